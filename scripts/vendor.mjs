// Copy the browser builds of htmx and the Socket.IO client into helpdesk/static/vendor/
// (gitignored), so pages load them from our own origin. Run as `npm ci && npm run build`.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const target = join(root, "helpdesk", "static", "vendor");
const files = [
  ["htmx.org/dist/htmx.min.js", "htmx.min.js"],
  ["socket.io-client/dist/socket.io.min.js", "socket.io.min.js"],
  ["socket.io-client/dist/socket.io.min.js.map", "socket.io.min.js.map"],
];

mkdirSync(target, { recursive: true });
for (const [source, name] of files) {
  const from = join(root, "node_modules", source);
  if (!existsSync(from)) {
    console.error(`missing ${from}; run "npm ci" first`);
    process.exit(1);
  }
  copyFileSync(from, join(target, name));
  console.log(`vendor/${name}`);
}
writeFileSync(join(target, ".built"), new Date().toISOString() + "\n");
