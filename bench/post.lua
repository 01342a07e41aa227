-- wrk script: every request is the same small JSON POST on a kept-alive connection.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"hello": "world"}'
