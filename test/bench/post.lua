-- post.lua — wrk script of `make bench`: POST a fixed form body to the URL's path.
--
--   wrk -s test/bench/post.lua -H 'Cookie: ...' URL -- 'csrf_token=...&field=...'
--   wrk -s test/bench/post.lua -H 'Authorization: Bearer ...' URL -- '{"body": ...}' application/json
--
-- bench.py fetches the tokens once before the run (a logged-in session and
-- its csrf token for POST /tickets/{id}/messages; the anonymous ccr_csrf
-- cookie, whose value is also the form's csrf_token, for POST /login) and
-- passes the cookie (or an API token) with -H and the body as the script
-- argument (a JSON body with its content type as the second), so every
-- request is identical and wrk builds it once per thread.
function init(args)
   wrk.method = "POST"
   wrk.body = args[1]
   wrk.headers["Content-Type"] = args[2] or "application/x-www-form-urlencoded"
end
