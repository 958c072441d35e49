// Runs the server CLI directly: node --import tsx server/main.ts <command> --data DIR …
import { serverCli } from './cli.ts';

process.exitCode = await serverCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
