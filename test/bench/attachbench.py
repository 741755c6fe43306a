#!/usr/bin/python3
"""attachbench.py — attachments through nginx and ccrd (`make bench`, or
alone: `make bench-attach`).

A private stack (test/stack.py: MariaDB, ccrd with 2 × cores workers, the
dev nginx) in a temporary folder, one customer with a ticket, then in one run:

  upload    a 10 MiB file posted as multipart/form-data to
            POST /tickets/{id}/messages, one request after the other (MB/s
            of file bytes, the 303 included);
  download  GET /attachments/{id}/{name} of a 1 MiB attachment with wrk
            (-t2 -c8), next to
  nginx     a second nginx (same build, 1 worker like the stack's) serving
            the same 1 MiB from a file on disk, with the same wrk settings.

Goal: the download at least 0.25 × nginx's req/s.  Writes the
"Attachments" section of RESULTS.md (replaced in place) and the
"attachments" key of RESULTS.json.
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
sys.dont_write_bytecode = True
import stack  # noqa: E402
import sections  # noqa: E402
import helpers  # noqa: E402

START = "<!-- attachments: written by test/bench/attachbench.py -->"
END = "<!-- /attachments -->"
MiB = 1024 * 1024
GOAL = 0.25


def wrk(url, secs, cookie=None):
    """req/s and MB/s (MiB/s of bodies) of wrk -t2 -c8 against url."""
    args = ["wrk", "-t2", "-c8", "-d%ds" % secs, "--latency"]
    if cookie:
        args += ["-H", "Cookie: " + cookie]
    p = subprocess.run(args + [url], capture_output=True, text=True, timeout=secs + 60)
    out = p.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if p.returncode != 0 or not m or bad:
        raise stack.StackError("wrk %s: %s %s" % (url, out[-400:], p.stderr[-200:]))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    rps = float(m.group(1))
    return {"req_s": round(rps, 1), "mb_s": round(rps, 1),   # 1 MiB a response
            "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None}


def static_nginx(tmp, port, data):
    """A second nginx serving /f.bin from tmp/www; its process."""
    www = os.path.join(tmp, "www")
    os.makedirs(os.path.join(tmp, "ngx", "logs"), exist_ok=True)
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "f.bin"), "wb") as f:
        f.write(data)
    conf = os.path.join(tmp, "ngx", "nginx.conf")
    with open(conf, "w") as f:
        # as root, the workers run as root too (as the dev nginx does): the
        # temporary folder is mode 0700
        f.write(("user root;\n" if os.geteuid() == 0 else "") + """daemon off; master_process on; worker_processes 1;
pid {p}/nginx.pid; error_log {p}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {p}/logs/access.log;
    client_body_temp_path {p}/cb; proxy_temp_path {p}/px; fastcgi_temp_path {p}/fc;
    uwsgi_temp_path {p}/uw; scgi_temp_path {p}/sc;
    sendfile on; keepalive_timeout 30s;
    server {{ listen 127.0.0.1:{port}; location / {{ root {www}; }} }}
}}
""".format(p=os.path.join(tmp, "ngx"), port=port, www=www))
    proc = subprocess.Popen([stack.NGINX, "-p", os.path.join(tmp, "ngx"), "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            if helpers.http_request(port, "GET", "/f.bin").status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.terminate()
    raise stack.StackError("static nginx did not start")


def run(a):
    tmp = tempfile.mkdtemp(prefix="ccr-attachbench-")
    port = stack.pick_free_port()
    st = stack.Stack(os.path.join(tmp, "var"), port, require_2fa="none")
    ngx = None
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "duration": a.duration, "uploads": a.uploads}
    try:
        st.start()
        c = helpers.Client(port, "127.0.0.1", keepalive=True)
        c.prime("/register")
        r = c.post("/register", {"first_name": "Bench", "last_name": "Files",
                                 "email": "attachbench@example.org", "password": "bench-password-1",
                                 "confirm_password": "bench-password-1"})
        assert r.status == 303, "register: %d" % r.status
        one = os.urandom(MiB)
        c.get("/tickets/new")
        r = helpers.post_multipart(c, "/tickets", [("subject", "Bench files"), ("description", "x")],
                                   [("attachment", "one.bin", one, "application/octet-stream")])
        assert r.status == 303, "ticket: %d" % r.status
        tid = int(re.search(r"/tickets/(\d+)", r.location).group(1))
        aid = int(st.sql("SELECT id FROM attachments WHERE ticket_id = %d" % tid)[0][0])
        # upload: 10 MiB files, one after the other
        ten = os.urandom(10 * MiB)
        c.get("/tickets/%d" % tid)
        ctype, body = helpers.encode_multipart([("csrf_token", c.last_csrf), ("body", "log")],
                                               [("attachment", "ten.bin", ten,
                                                 "application/octet-stream")])
        t0 = time.monotonic()
        for _ in range(a.uploads):
            r = c.raw("POST", "/tickets/%d/messages" % tid, body=body,
                      headers={"Content-Type": ctype}, timeout=120)
            assert r.status == 303, "upload: %d" % r.status
        t = time.monotonic() - t0
        res["upload"] = {"mb_s": round(a.uploads * 10 / t, 1), "seconds": round(t / a.uploads, 3)}
        # download: ccrd vs nginx from disk, interleaved rounds, medians
        url = "http://127.0.0.1:%d/attachments/%d/one.bin" % (port, aid)
        d = helpers.http_request(port, "GET", "/attachments/%d/one.bin" % aid,
                                 headers={"Cookie": c.cookie_header()})
        assert d.status == 200 and hashlib.sha256(d.body).digest() == hashlib.sha256(one).digest()
        sport = stack.pick_free_port()
        ngx = static_nginx(tmp, sport, one)
        rounds = {"ccrd": [], "nginx": []}
        for _ in range(a.rounds):
            rounds["ccrd"].append(wrk(url, a.duration, c.cookie_header()))
            rounds["nginx"].append(wrk("http://127.0.0.1:%d/f.bin" % sport, a.duration))
        for k, v in rounds.items():
            v.sort(key=lambda x: x["req_s"])
            res[k] = v[len(v) // 2]
        res["ratio"] = round(res["ccrd"]["req_s"] / res["nginx"]["req_s"], 3)
        res["goal"] = GOAL
        hwm = []
        for pid in st.worker_pids():
            with open("/proc/%d/status" % pid) as f:
                hwm += [int(l.split()[1]) for l in f if l.startswith("VmHWM:")]
        res["worker_vmhwm_mib"] = round(max(hwm) / 1024.0, 1) if hwm else None
    finally:
        if ngx:
            ngx.terminate()
            ngx.wait(10)
        st.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def report(res):
    u, c, n = res["upload"], res["ccrd"], res["nginx"]
    return "\n".join([
        START, "## Attachments", "",
        "Generated by test/bench/attachbench.py on %s: a private stack (2 × cores workers, the "
        "dev nginx), %d uploads of a 10 MiB file one after the other; downloads of a 1 MiB "
        "attachment with `wrk -t2 -c8 -d%ds` (median of the interleaved rounds) next to a "
        "second nginx serving the same bytes from a file on disk. Goal: ccrd ≥ %.2f × nginx."
        % (res["started"], res["uploads"], res["duration"], res["goal"]), "",
        "| what | req/s | MiB/s | p99 ms |", "|---|---:|---:|---:|",
        "| upload 10 MiB (`POST /tickets/{id}/messages`) | %.1f | %.1f | – |"
        % (1.0 / u["seconds"], u["mb_s"]),
        "| download 1 MiB (`GET /attachments/{id}/{name}`) | %.0f | %.0f | %s |"
        % (c["req_s"], c["mb_s"], c["p99_ms"]),
        "| nginx, the same 1 MiB from disk | %.0f | %.0f | %s |" % (n["req_s"], n["mb_s"], n["p99_ms"]),
        "", "Download ÷ nginx: **%.2f** (goal %.2f: %s). Worker peak RSS (VmHWM) after the run: "
        "%s MiB." % (res["ratio"], res["goal"], "met" if res["ratio"] >= res["goal"] else "NOT met",
                     res["worker_vmhwm_mib"]),
        "", END, ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--uploads", type=int, default=10)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--md", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--json", default=os.path.join(HERE, "RESULTS.json"))
    a = ap.parse_args()
    res = run(a)
    print("attachments: upload %.1f MiB/s; download %.0f req/s (%.0f MiB/s) vs nginx %.0f req/s: "
          "%.2f x (goal %.2f)" % (res["upload"]["mb_s"], res["ccrd"]["req_s"], res["ccrd"]["mb_s"],
                                  res["nginx"]["req_s"], res["ratio"], GOAL))
    sections.write(a.md, a.json, START, END, report(res), "attachments", res)


if __name__ == "__main__":
    try:
        main()
    except (stack.StackError, AssertionError) as e:
        print("attachbench: %s" % e, file=sys.stderr)
        sys.exit(1)
