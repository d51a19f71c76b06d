// Fails when src/gen is not what `npm run generate` makes from ../proto now: generates into a
// scratch copy and compares file by file.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const scratch = mkdtempSync(path.join(tmpdir(), "invest-gen-"));

function files(dir, base = dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? files(p, base) : [path.relative(base, p)];
  });
}

try {
  execFileSync(
    path.join(web, "node_modules/.bin/buf"),
    ["generate", "--template", path.join(web, "buf.gen.yaml"), "-o", scratch],
    {
      cwd: web,
      stdio: "inherit",
      env: { ...process.env, PATH: `${path.join(web, "node_modules/.bin")}${path.delimiter}${process.env.PATH}` },
    },
  );
  const fresh = path.join(scratch, "src/gen");
  const checked = path.join(web, "src/gen");
  const a = files(fresh).sort();
  const b = files(checked).sort();
  const stale = [
    ...a.filter((f) => !b.includes(f) || !readFileSync(path.join(fresh, f)).equals(readFileSync(path.join(checked, f)))),
    ...b.filter((f) => !a.includes(f)),
  ];
  if (a.length === 0) throw new Error("buf generated nothing");
  if (stale.length > 0) {
    console.error(`web/src/gen is stale (${stale.join(", ")}): run \`npm run generate\` in web/ and commit it`);
    process.exit(1);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
