#!/usr/bin/env bash
# Provision a single-node Kubernetes on this (Debian 12) VM with containerd 1.7 + NRI, install
# signet from its .deb as a systemd service watching the cluster's policy, and check the
# flows that matter on a real kubelet:
#   - a pod with a cosign-signed image runs;
#   - a pod with an unsigned image never starts, and the reason reaches `kubectl describe`;
#   - a static pod (which no admission controller sees) with an unsigned image never starts;
#   - the ClusterImagePolicy status shows this node accepted the policy.
# Run by the Vagrantfile after the e2e suite (which leaves containerd and cosign installed
# from Debian trixie, as integration/world.sh does). Needs root and network access.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_MINOR=${K8S_MINOR:-v1.31}
REG=127.0.0.1:5000
export DEBIAN_FRONTEND=noninteractive KUBECONFIG=/etc/kubernetes/admin.conf
say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL - $*" >&2; exit 1; }

say "kernel and containerd for kubelet (systemd cgroups, NRI on, local HTTP registry)"
swapoff -a
modprobe overlay; modprobe br_netfilter
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
apt-get install -y -q containernetworking-plugins docker-registry skopeo curl gpg >/dev/null
mkdir -p /etc/containerd /etc/containerd/certs.d/$REG
containerd config default > /etc/containerd/config.toml
python3 - <<'PY'
import re
p = "/etc/containerd/config.toml"
t = open(p).read()
t = t.replace("SystemdCgroup = false", "SystemdCgroup = true")
# NRI: on, with the socket signet dials.
t = re.sub(r'(\[plugins\."io\.containerd\.nri\.v1\.nri"\][^\[]*?)disable = true', r'\1disable = false', t, flags=re.S)
t = re.sub(r'(\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\][^\[]*?)config_path = ""',
           r'\1config_path = "/etc/containerd/certs.d"', t, flags=re.S)
open(p, "w").write(t)
PY
printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REG" "$REG" \
  > /etc/containerd/certs.d/$REG/hosts.toml
mkdir -p /etc/cni/net.d
cat > /etc/cni/net.d/10-bridge.conflist <<'JSON'
{"cniVersion": "1.0.0", "name": "node", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
ln -sf /usr/lib/cni/* /opt/cni/bin/ 2>/dev/null || { mkdir -p /opt/cni/bin; ln -sf /usr/lib/cni/* /opt/cni/bin/; }
systemctl enable --now docker-registry containerd
systemctl restart containerd

say "kubeadm single node ($K8S_MINOR)"
mkdir -p /etc/apt/keyrings
curl -fsSL "https://pkgs.k8s.io/core:/stable:/$K8S_MINOR/deb/Release.key" | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/$K8S_MINOR/deb/ /" \
  > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q && apt-get install -y -q kubelet kubeadm kubectl >/dev/null
if [ ! -f /etc/kubernetes/admin.conf ]; then
  kubeadm init --pod-network-cidr 10.244.0.0/16 --cri-socket unix:///run/containerd/containerd.sock
fi
kubectl taint nodes --all node-role.kubernetes.io/control-plane- 2>/dev/null || true
kubectl wait --for=condition=Ready node --all --timeout=300s

say "signet from its .deb, as a service, with cluster policy"
cd "$REPO"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked -q
cargo build --release --locked -q && dpkg -i "$(cargo deb --no-build --locked | tail -1)"
kubectl apply -f /usr/share/signet/kubernetes/crd.yaml -f /usr/share/signet/kubernetes/rbac.yaml
# The node baseline: what the node itself runs (control plane, pause, CoreDNS) is admitted
# even before the first sync with the API server.
cat > /etc/signet/policies/baseline.yaml <<'YAML'
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: node-baseline}
spec:
  images: [{glob: "registry.k8s.io/**"}]
  authorities: [{static: {action: pass}}]
YAML
cat > /etc/signet/config.toml <<TOML
cluster_policy = true
insecure_registries = ["$REG"]
TOML
mkdir -p /etc/systemd/system/signet.service.d
# A demo VM: the admin kubeconfig. A real node uses a kubeconfig for the signet ServiceAccount.
printf '[Service]\nEnvironment=KUBECONFIG=/etc/kubernetes/admin.conf\n' > /etc/systemd/system/signet.service.d/kubeconfig.conf
systemctl daemon-reload && systemctl enable --now signet
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:9180/readyz >/dev/null && break; sleep 1; done
curl -fs http://127.0.0.1:9180/readyz || fail "signet not ready: $(journalctl -u signet -n 30 --no-pager)"

say "signed and unsigned images in the local registry"
KEYS=$(mktemp -d)
(cd "$KEYS" && COSIGN_PASSWORD= cosign generate-key-pair >/dev/null)
skopeo copy -q --dest-tls-verify=false docker://registry.k8s.io/pause:3.10 docker://$REG/demo/signed:v1
skopeo copy -q --dest-tls-verify=false docker://registry.k8s.io/pause:3.9 docker://$REG/demo/unsigned:v1
DIGEST=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' docker://$REG/demo/signed:v1)
COSIGN_PASSWORD= cosign sign -y --key "$KEYS/cosign.key" --allow-http-registry --allow-insecure-registry \
  --tlog-upload=false "$REG/demo/signed@$DIGEST"
cat <<YAML | kubectl apply -f -
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: demo}
spec:
  images: [{glob: "$REG/demo/*"}]
  authorities:
    - key:
        data: |
$(sed 's/^/          /' "$KEYS/cosign.pub")
YAML
for _ in $(seq 1 30); do
  [ "$(kubectl get clusterimagepolicies.signet.dev demo -o jsonpath='{.status.nodes.*.accepted}')" = true ] && break
  sleep 1
done
[ "$(kubectl get clusterimagepolicies.signet.dev demo -o jsonpath='{.status.nodes.*.accepted}')" = true ] \
  || fail "the node did not report the policy accepted"
echo "ok   - the node reports the policy accepted in its status"

say "pods"
kubectl run signed --image=$REG/demo/signed:v1 --restart=Never
kubectl wait --for=condition=Ready pod/signed --timeout=120s || fail "signed pod did not start"
echo "ok   - a pod with a cosign-signed image runs"
kubectl run unsigned --image=$REG/demo/unsigned:v1 --restart=Never
for _ in $(seq 1 60); do
  kubectl get events --field-selector involvedObject.name=unsigned -o jsonpath='{.items[*].message}' | grep -q signet && break
  sleep 2
done
kubectl get events --field-selector involvedObject.name=unsigned -o jsonpath='{.items[*].message}' | grep -q 'no signatures found' \
  || fail "unsigned pod: no signet denial in its events"
[ "$(kubectl get pod unsigned -o jsonpath='{.status.containerStatuses[0].state.running}')" = "" ] || fail "unsigned pod runs"
echo "ok   - a pod with an unsigned image never starts; the reason is in its events"

NODE=$(hostname)
cat > /etc/kubernetes/manifests/static-unsigned.yaml <<YAML
apiVersion: v1
kind: Pod
metadata: {name: static-unsigned, namespace: default}
spec:
  containers: [{name: c, image: "$REG/demo/unsigned:v1"}]
YAML
sleep 30
if crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -q --name '^c$' | grep -q .; then
  fail "the static pod's unsigned container is running"
fi
journalctl -u signet --since "-2min" --no-pager | grep -q 'static-unsigned' || fail "no signet decision for the static pod"
echo "ok   - a static pod (no admission controller sees it) with an unsigned image never starts"
rm -f /etc/kubernetes/manifests/static-unsigned.yaml
kubectl delete pod signed unsigned --now >/dev/null
echo "k8s: all checks passed on node $NODE"
