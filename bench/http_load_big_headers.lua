-- wrk script for bench/http_load.sh: every request carries 64 KiB of
-- headers (16 of 4 KiB), past the server's header limit, so it measures how
-- cheaply the server refuses them (431) while pipelines run.
local value = string.rep("x", 4096)
local headers = {}
for i = 1, 16 do
  headers["X-Big-" .. i] = value
end

request = function()
  return wrk.format("GET", nil, headers)
end
