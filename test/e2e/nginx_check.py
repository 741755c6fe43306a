#!/usr/bin/python3
"""Validate the shipped nginx configs with `nginx -t` (stdlib only).

    /usr/bin/python3 test/e2e/nginx_check.py [prod|dev ...]

prod: nginx/ccr.conf (a sites-available file) is wrapped in a minimal
      nginx.conf with http{}, a self-signed certificate made with openssl in a
      temporary directory, and `include fastcgi_params` resolved from a copy of
      /etc/nginx/fastcgi_params.  Only paths are rewritten (certificate and log
      files, so nothing is written outside the temporary directory).
dev:  nginx/ccr-dev.conf.in rendered as test/stack.py renders it.

Passes when `nginx -t -q` exits 0 and prints nothing (warnings fail too).
"""
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _run_nginx_t(tmp, conf):
    p = subprocess.run([NGINX, "-t", "-q", "-p", tmp, "-e", os.path.join(tmp, "error.log"),
                        "-c", conf], capture_output=True, text=True, timeout=30)
    out = (p.stdout + p.stderr).strip()
    return p.returncode == 0 and not out, out or "exit %d" % p.returncode


def check_prod(repo=REPO):
    """Return (ok, output) for nginx/ccr.conf."""
    tmp = tempfile.mkdtemp(prefix="ccr-nginx-t-")
    try:
        crt, key = os.path.join(tmp, "fullchain.pem"), os.path.join(tmp, "privkey.pem")
        p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", crt, "-days", "2",
                            "-subj", "/CN=ccr.example.com"],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            return False, "openssl failed: " + p.stderr.strip()
        with open(os.path.join(repo, "nginx", "ccr.conf")) as f:
            site = f.read()
        site = (site.replace("/etc/ssl/ccr/fullchain.pem", crt)
                    .replace("/etc/ssl/ccr/privkey.pem", key)
                    .replace("/var/log/nginx/", tmp + "/"))
        with open(os.path.join(tmp, "ccr.conf"), "w") as f:
            f.write(site)
        for name in ("fastcgi_params", "mime.types"):
            shutil.copy(os.path.join("/etc/nginx", name), tmp)
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""pid {t}/nginx.pid;
error_log {t}/error.log;
events {{ }}
http {{
    include mime.types;
    access_log {t}/access.log;
    client_body_temp_path {t}/client_body_temp;
    proxy_temp_path {t}/proxy_temp;
    fastcgi_temp_path {t}/fastcgi_temp;
    uwsgi_temp_path {t}/uwsgi_temp;
    scgi_temp_path {t}/scgi_temp;
    include ccr.conf;
}}
""".format(t=tmp))
        return _run_nginx_t(tmp, conf)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_dev(repo=REPO):
    """Return (ok, output) for nginx/ccr-dev.conf.in rendered into a temp prefix."""
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.join(repo, "test"))
    import stack  # noqa: E402  (test/stack.py)
    tmp = tempfile.mkdtemp(prefix="ccr-nginx-t-")
    try:
        conf = stack.render_nginx_conf(repo, prefix=os.path.join(tmp, "nginx"),
                                       logdir=os.path.join(tmp, "log"),
                                       socket=os.path.join(tmp, "ccrd.sock"), port=18080)
        return _run_nginx_t(os.path.join(tmp, "nginx"), conf)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    which = argv or ["prod", "dev"]
    bad = 0
    for w in which:
        ok, out = {"prod": check_prod, "dev": check_dev}[w]()
        print("%s nginx -t %s%s" % ("PASS" if ok else "FAIL", w, "" if ok else ": " + out))
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
