import nodeDataChannel from 'node-datachannel';

const RTC_LOG_LEVELS = ['Verbose', 'Debug', 'Info', 'Warning', 'Error', 'Fatal'] as const;

/**
 * README "Troubleshooting": SWEEP_RTC_LOG=Debug (or Verbose, …) shows libdatachannel's and
 * libjuice's ICE on stderr — candidates, TURN allocations and permissions, every check.
 */
export function rtcLogFromEnv(level: string | undefined): void {
  if (!level) return;
  const known = RTC_LOG_LEVELS.find((l) => l === level);
  if (known) nodeDataChannel.initLogger(known, (lvl, message) => process.stderr.write(`[rtc ${lvl}] ${message}\n`));
  else process.stderr.write(`SWEEP_RTC_LOG: "${level}" is not a level; allowed: ${RTC_LOG_LEVELS.join(', ')}\n`);
}
