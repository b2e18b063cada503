wrk.method = "POST"
wrk.body = '{"prompt": "a red circle on a blue background", "seed": 1}'
wrk.headers["Content-Type"] = "application/json"
