// Preloaded with `node --require` so that a server that calls listen(port) with no host (such as
// @modelcontextprotocol/server-everything) binds 127.0.0.1 only, not every interface.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if ((typeof args[0] === "number" || typeof args[0] === "string") && /^\d+$/.test(String(args[0]))
      && (args.length === 1 || typeof args[1] === "function")) {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
