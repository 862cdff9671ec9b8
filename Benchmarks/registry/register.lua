-- wrk script: every request registers a new instance (PUT with a JSON body).
local counter = 0
local thread_id = 0
setup = function(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end
request = function()
  counter = counter + 1
  local body = '{"url": "http://127.0.0.1:' .. (10000 + counter % 50000) .. '", "version": "1.0.0", "ttl_seconds": 600, "routes": [{"methods": ["GET"], "path": "/users/{user_id}"}, {"methods": ["POST"], "path": "/users/"}]}'
  return wrk.format("PUT", "/v1/services/bench/instances/t" .. thread_id .. "-" .. counter, {["Content-Type"] = "application/json"}, body)
end
