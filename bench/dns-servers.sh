# Shared by the bench scripts: a free loopback port, waiting for a DNS server, and NSD
# serving a directory of NAME.zone files (authoritative for each, plus an empty root) on a
# free port. Expects $work (a scratch directory) and $nsd_pid (empty, or the running
# NSD to replace); sets nsd_port and nsd_pid. Source it: . bench/dns-servers.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_dns() { # port seconds
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
q = bytes.fromhex("abcd01000001000000000000") + b"\x09amazonses\x03com\x00" + bytes.fromhex("00100001")
while time.time() < deadline:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(q, ("127.0.0.1", port))
        if s.recv(4096)[:2] == b"\xab\xcd":
            sys.exit(0)
    except OSError:
        time.sleep(0.2)
    finally:
        s.close()
sys.exit(1)
PY
}

start_nsd() { # zone dir
  local dir=$1 conf=$work/nsd/nsd.conf
  if [ -n "$nsd_pid" ]; then kill "$nsd_pid" 2>/dev/null || true; wait "$nsd_pid" 2>/dev/null || true; fi
  rm -rf "$work/nsd" && mkdir -p "$work/nsd"
  nsd_port=$(free_port)
  printf '$ORIGIN .\n$TTL 300\n@ 3600 IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60\n@ 3600 IN NS ns.bench.\n' > "$work/nsd/root.zone"
  {
    echo "server:"
    echo "  ip-address: 127.0.0.1@$nsd_port"
    echo "  port: $nsd_port"
    echo "  do-ip6: no"
    echo "  server-count: 1"
    echo "  username: \"\""
    echo "  chroot: \"\""
    echo "  zonesdir: \"$dir\""
    echo "  database: \"\""
    echo "  zonelistfile: \"$work/nsd/zone.list\""
    echo "  xfrdfile: \"$work/nsd/xfrd.state\""
    echo "  xfrdir: \"$work/nsd\""
    echo "  pidfile: \"$work/nsd/nsd.pid\""
    echo "  logfile: \"$work/nsd/nsd.log\""
    echo "  verbosity: 0"
    echo "  rrl-ratelimit: 0"
    echo "remote-control:"
    echo "  control-enable: no"
    echo "zone:"
    echo "  name: \".\""
    echo "  zonefile: \"$work/nsd/root.zone\""
    for f in "$dir"/*.zone; do
      z=${f##*/}
      printf 'zone:\n  name: "%s"\n  zonefile: "%s"\n' "${z%.zone}" "$f"
    done
  } > "$conf"
  nsd -d -c "$conf" >>"$work/nsd/stderr" 2>&1 &
  nsd_pid=$!
  wait_dns "$nsd_port" 900 || { echo "nsd did not start:" >&2; cat "$work/nsd/stderr" "$work/nsd/nsd.log" >&2 || true; exit 1; }
}
