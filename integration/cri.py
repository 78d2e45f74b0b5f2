#!/usr/bin/env python3
"""The e2e world's CRI client: drives containerd's CRI API (runtime.v1) the way kubelet does.
Debian packages no crictl; this needs only grpcio and stubs that integration/world.sh
generates from the k8s-cri crate's proto into $CRI_STATE/cri.

    cri.py run IMAGE [--keep] [--wait S] [--by-id [--claim REF]] [--seccomp-default] [--name N] [--image-volume REF]...
        PullImage, RunPodSandbox (host network, no CNI), CreateContainer, StartContainer; waits
        for CONTAINER_RUNNING and the first log line, prints the log and per-call timings
        ("timings: pull=..ms runp=..ms create=..ms start=..ms"), then removes the pod
        unless --keep. Each --image-volume is pulled and mounted read-only at /volumes/N as
        kubelet mounts a Kubernetes image volume (CRI Mount.image, containerd >= 2.1).
        Exit 0: the container ran; 3: the runtime refused it (prints
        "REJECTED: CODE: details"); 4: created but never running.
    cri.py pull IMAGE | images | ps | pods | version | status
    cri.py cleanup       remove every pod this client made (namespace "probe")

Environment: CRI_ENDPOINT (unix socket URL), CRI_STATE (the world's state dir).
"""
import argparse
import os
import sys
import time
import uuid

STATE = os.environ.get("CRI_STATE") or os.environ.get("PROBE_STATE") or "."
sys.path.insert(0, os.path.join(STATE, "cri"))
import grpc  # noqa: E402
import api_pb2 as api  # noqa: E402
import api_pb2_grpc as api_grpc  # noqa: E402

ENDPOINT = os.environ.get("CRI_ENDPOINT", "unix:///run/containerd/containerd.sock")
POD_NAMESPACE = "probe"


def clients():
    channel = grpc.insecure_channel(ENDPOINT)
    return api_grpc.RuntimeServiceStub(channel), api_grpc.ImageServiceStub(channel)


def sandbox_config(name, labels=(), annotations=()):
    uid = uuid.uuid4().hex[:12]
    logs = os.path.join(STATE, "pods", f"{name}-{uid}")
    os.makedirs(logs, exist_ok=True)
    ns = api.NamespaceOption(network=api.NODE, pid=api.POD, ipc=api.POD)
    # No hostname: a host-network pod shares the host's UTS namespace, where runc cannot set one.
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, uid=uid, namespace=POD_NAMESPACE, attempt=0),
        log_directory=logs, labels={"app": "probe", **dict(labels)}, annotations=dict(annotations),
        linux=api.LinuxPodSandboxConfig(cgroup_parent=f"/probe-pods/pod{uid}",
                                        security_context=api.LinuxSandboxSecurityContext(namespace_options=ns)),
    ), logs


def run(args):
    rt, img = clients()
    timings = {}

    def timed(label, call, request):
        start = time.monotonic()
        try:
            return call(request)
        finally:
            timings[label] = time.monotonic() - start

    name = args.name or "probe-" + args.image.rsplit("/", 1)[-1].replace(":", "-").replace("@", "-")[:40]
    pulled = timed("pull", img.PullImage, api.PullImageRequest(image=api.ImageSpec(image=args.image)))
    print(f"pulled {args.image} -> {pulled.image_ref}")
    pod_cfg, logs = sandbox_config(name, args.label, args.annotation)
    pod = timed("runp", rt.RunPodSandbox, api.RunPodSandboxRequest(config=pod_cfg)).pod_sandbox_id
    print(f"pod {pod}")
    # kubelet passes the image ID from PullImage and the user's reference beside it.
    # --claim REF: a direct CRI caller naming other content than the ID it runs.
    spec = (api.ImageSpec(image=pulled.image_ref, user_specified_image=args.claim or args.image) if args.by_id
            else api.ImageSpec(image=args.image))
    security = api.LinuxContainerSecurityContext(
        namespace_options=api.NamespaceOption(network=api.NODE, pid=api.CONTAINER, ipc=api.POD))
    if args.seccomp_default:
        security.seccomp.CopyFrom(api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault))
    # kubelet pulls an image volume's image first and mounts it by the image ID PullImage
    # answered, with the pod spec's reference beside it.
    mounts = []
    for i, ref in enumerate(args.image_volume):
        vol = timed(f"pull_volume{i}", img.PullImage, api.PullImageRequest(image=api.ImageSpec(image=ref)))
        print(f"pulled volume {ref} -> {vol.image_ref}")
        mounts.append(api.Mount(container_path=f"/volumes/{i}", readonly=True,
                                image=api.ImageSpec(image=vol.image_ref, user_specified_image=ref)))
    cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name="main", attempt=0), image=spec,
                              log_path="main.log", labels={"app": "probe"}, mounts=mounts,
                              linux=api.LinuxContainerConfig(security_context=security))
    rc, cid = 0, None
    try:
        cid = timed("create", rt.CreateContainer,
                    api.CreateContainerRequest(pod_sandbox_id=pod, config=cfg, sandbox_config=pod_cfg)).container_id
        print(f"container {cid}")
        timed("start", rt.StartContainer, api.StartContainerRequest(container_id=cid))
        t0, state = time.monotonic(), None
        while time.monotonic() - t0 < args.wait:
            state = rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid)).status.state
            if state == api.CONTAINER_RUNNING:
                break
            time.sleep(0.02)
        timings["until_running"] = time.monotonic() - t0
        print(f"state {api.ContainerState.Name(state) if state is not None else 'unknown'}")
        log = os.path.join(logs, "main.log")
        # The log line is written by the shim after the process prints; wait for it, bounded.
        t1 = time.monotonic()
        while state == api.CONTAINER_RUNNING and time.monotonic() - t1 < 3:
            if os.path.exists(log) and os.path.getsize(log) > 0:
                break
            time.sleep(0.02)
        if os.path.exists(log):
            print("log:\n" + open(log).read().rstrip())
        if state != api.CONTAINER_RUNNING:
            rc = 4
    except grpc.RpcError as e:
        print(f"REJECTED: {e.code().name}: {e.details()}")
        rc = 3
    print("timings: " + " ".join(f"{k}={v * 1000:.0f}ms" for k, v in timings.items()))
    if not args.keep:
        if cid:
            rt.StopContainer(api.StopContainerRequest(container_id=cid, timeout=1))
            rt.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
        rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod))
        rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod))
        print("cleaned up")
    return rc


def cleanup(_):
    rt, _img = clients()
    for pod in rt.ListPodSandbox(api.ListPodSandboxRequest()).items:
        if pod.metadata.namespace == POD_NAMESPACE:
            rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod.id))
            rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
            print("removed pod", pod.id, pod.metadata.name)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("image")
    p.add_argument("--name")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--wait", type=float, default=10)
    p.add_argument("--by-id", action="store_true")
    p.add_argument("--claim", default=None, help="with --by-id: the user_specified_image to send")
    p.add_argument("--seccomp-default", action="store_true")
    p.add_argument("--image-volume", action="append", default=[])
    # The pod's own labels and annotations (beside app=probe), as kubelet passes a pod's.
    p.add_argument("--label", action="append", default=[], type=lambda kv: tuple(kv.split("=", 1)))
    p.add_argument("--annotation", action="append", default=[], type=lambda kv: tuple(kv.split("=", 1)))
    sub.add_parser("pull").add_argument("image")
    for c in ("images", "ps", "pods", "version", "status", "cleanup"):
        sub.add_parser(c)
    a = ap.parse_args()
    if a.cmd == "run":
        return run(a)
    if a.cmd == "cleanup":
        return cleanup(a)
    rt, img = clients()
    if a.cmd == "pull":
        t0 = time.monotonic()
        ref = img.PullImage(api.PullImageRequest(image=api.ImageSpec(image=a.image))).image_ref
        print(ref, f"({(time.monotonic() - t0) * 1000:.0f}ms)")
    elif a.cmd == "images":
        for i in img.ListImages(api.ListImagesRequest()).images:
            print(i.id, list(i.repo_tags), list(i.repo_digests))
    elif a.cmd == "ps":
        for c in rt.ListContainers(api.ListContainersRequest()).containers:
            print(c.id, c.metadata.name, api.ContainerState.Name(c.state), c.image.image, c.pod_sandbox_id)
    elif a.cmd == "pods":
        for p in rt.ListPodSandbox(api.ListPodSandboxRequest()).items:
            print(p.id, p.metadata.name, api.PodSandboxState.Name(p.state))
    elif a.cmd == "version":
        print(rt.Version(api.VersionRequest()))
    elif a.cmd == "status":
        print(rt.Status(api.StatusRequest()).status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
