import { run } from './call-cpu.ts';
run({ seconds: Number(process.env.SECS ?? 30), nodeArgs: (process.env.NODEARGS ?? '').split(' ').filter(Boolean) }).then((r) => console.log(JSON.stringify(r)), (e: unknown) => console.error(e));
