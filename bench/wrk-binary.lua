-- One binary-mode CloudEvent per request, each with its own id (the router
-- would drop a repeated id as a duplicate), 256 bytes of JSON data like the
-- project's load tool. Used by bench/run.py for the wrk set-up.
local n = 0
local data = '{"pad":"' .. string.rep("x", 246) .. '"}'
request = function()
  n = n + 1
  return wrk.format("POST", "/events", {
    ["ce-specversion"] = "1.0",
    ["ce-id"] = "wrk-" .. n,
    ["ce-source"] = "/wrk",
    ["ce-type"] = "bench.event",
    ["content-type"] = "application/json",
  }, data)
end
