-- wrk script: POST one tools/call per request, with the session id from the environment.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/json, text/event-stream"
wrk.headers["mcp-protocol-version"] = "2025-11-25"
local session = os.getenv("MCP_SESSION")
if session and session ~= "" then
  wrk.headers["mcp-session-id"] = session
end
local name = os.getenv("MCP_TOOL") or "echo"
local pad = string.rep("x", tonumber(os.getenv("MCP_PAD") or "900"))
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. name ..
  '","arguments":{"message":"' .. pad .. '"}}}'

local errors = 0
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true) then
    errors = errors + 1
    if errors <= 3 then io.stderr:write("bad response " .. status .. ": " .. string.sub(body, 1, 200) .. "\n") end
  end
end
