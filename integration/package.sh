#!/usr/bin/env bash
# Build the .deb and .rpm the way a release would, install the .deb with dpkg on this
# machine and check what a platform team relies on: the binary runs, the unit verifies,
# config is a conffile kept across reinstall, the service is not started on install,
# removal keeps config and purge removes it. The .rpm is inspected (files, %config
# noreplace) and, since this is not an rpm system, installed, upgraded and erased in a
# separate root with rpm. Also checks the Vagrantfile's Ruby syntax.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"

PASSED=0
check() { local name=$1; shift; if "$@"; then PASSED=$((PASSED + 1)); echo "ok   - $name"; else echo "FAIL - $name"; exit 1; fi; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
}
apt_install rpm ruby
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked -q
command -v cargo-generate-rpm >/dev/null || cargo install cargo-generate-rpm --locked -q

check "Vagrantfile: Ruby syntax" ruby -c Vagrantfile

cargo build --release --locked -q
DEB=$(cargo deb --no-build --locked 2>/dev/null | tail -1)
check ".deb built ($DEB)" test -f "$DEB"
dpkg -P signet >/dev/null 2>&1 || true
check "dpkg installs it" dpkg -i "$DEB"
check "signet version runs from the package" sh -c '/usr/bin/signet version | grep -q "^signet "'
check "the systemd unit verifies" systemd-analyze verify /lib/systemd/system/signet.service
check "config.toml is a conffile" sh -c 'dpkg-query -W -f="\${Conffiles}" signet | grep -q /etc/signet/config.toml'
check "the service is not enabled by installing" sh -c '! test -e /etc/systemd/system/multi-user.target.wants/signet.service'
check "the packaged manifests and example policy are installed" \
  test -f /usr/share/signet/kubernetes/crd.yaml -a -f /usr/share/doc/signet/examples/policy.yaml
echo "# local change" >> /etc/signet/config.toml
check "reinstalling keeps a locally changed config" sh -c "dpkg -i '$DEB' >/dev/null && grep -q '# local change' /etc/signet/config.toml"
check "pre-installed mode switch creates and removes the plugin link" sh -c \
  '/usr/sbin/signet-preinstalled enable >/dev/null && test -L /opt/nri/plugins/05-signet && /usr/sbin/signet-preinstalled disable >/dev/null && ! test -e /opt/nri/plugins/05-signet'
check "removal keeps config" sh -c 'dpkg -r signet >/dev/null && ! test -e /usr/bin/signet && test -f /etc/signet/config.toml'
check "purge removes config" sh -c 'dpkg -P signet >/dev/null && ! test -e /etc/signet/config.toml'

cargo generate-rpm >/dev/null
RPM=$(ls -t target/generate-rpm/*.rpm | head -1)
check ".rpm built ($RPM)" test -f "$RPM"
check ".rpm holds the binary and the unit" sh -c "rpm -qpl '$RPM' | grep -q '^/usr/bin/signet$' && rpm -qpl '$RPM' | grep -q '^/usr/lib/systemd/system/signet.service$'"
check ".rpm marks config.toml %config(noreplace)" sh -c \
  "rpm -qp --queryformat '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' '$RPM' | grep -q '^/etc/signet/config.toml cn'"
# Not an rpm system: install into a separate root (no scriptlets, no dependency database).
ROOT=$(mktemp -d)
check "rpm installs it into a root; the binary runs" sh -c \
  "rpm --root '$ROOT' -i --nodeps --noscripts '$RPM' 2>/dev/null && '$ROOT/usr/bin/signet' version | grep -q '^signet '"
echo "# local change" >> "$ROOT/etc/signet/config.toml"
check "rpm reinstall keeps a locally changed config" sh -c \
  "rpm --root '$ROOT' -U --replacepkgs --nodeps --noscripts '$RPM' 2>/dev/null && grep -q '# local change' '$ROOT/etc/signet/config.toml'"
check "rpm erase removes the binary and keeps the changed config as .rpmsave" sh -c \
  "rpm --root '$ROOT' -e --nodeps --noscripts signet 2>/dev/null && ! test -e '$ROOT/usr/bin/signet' && test -f '$ROOT/etc/signet/config.toml.rpmsave'"
rm -rf "$ROOT"
echo "packages: $PASSED passed"
