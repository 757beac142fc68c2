#!/bin/sh
# A network namespace of our own for the media benchmark with Janus (root needed):
# loopback plus a veth pair whose two ends both stay inside it (10.77.0.1 / 10.77.0.2).
# Janus leaves loopback out of its ICE candidates, so it is told to use tbv0 only
# (ice_enforce_list); nothing in the namespace can reach any other network.
#
#   bench/media/netns.sh up
#   ip netns exec tbbench .venv/bin/python -m bench.media.run --modes forward,naive,janus
#   bench/media/netns.sh down
set -eu
NS=tbbench
case "${1:-}" in
up)
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" link add tbv0 type veth peer name tbv1
    ip -n "$NS" addr add 10.77.0.1/24 dev tbv0
    ip -n "$NS" addr add 10.77.0.2/24 dev tbv1
    ip -n "$NS" link set tbv0 up
    ip -n "$NS" link set tbv1 up
    # Both ends are local addresses of this namespace: Janus (libnice) sends out of tbv0
    # and the packet arrives on tbv1 with a local source address, which Linux drops as a
    # martian unless accept_local is on (only inside this namespace).
    for dev in all default lo tbv0 tbv1; do
        ip netns exec "$NS" sysctl -q -w "net.ipv4.conf.$dev.accept_local=1" \
            "net.ipv4.conf.$dev.rp_filter=0"
    done
    ;;
down)
    ip netns del "$NS"
    ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
