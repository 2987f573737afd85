// The engine as the other layers see it: the control server, the CLI and the demo import the
// engine from here and nowhere else (npm run lint enforces it), so what lies behind this file can
// move without them noticing. Export only what one of them uses.
export {
  ApplyNotCommittedError,
  Engine,
  EngineBusyError,
  ForeignPlanError,
  StaleGenerationError,
  UnknownGenerationError,
  type ApplyOptions,
  type DrainSummary,
  type EngineOptions,
} from './engine.js';
export { StateDirectoryError } from './state-directory.js';
export { StateLockedError, StateLockError } from './state-lock.js';
export { GenerationHistory } from './history.js';
export {
  defaultLogFormat,
  LOG_LEVELS,
  pinoLog,
  type EngineLog,
  type LogFormat,
  type LogLevel,
} from './log.js';
export type { PartnerDirection } from './partner-health.js';
export { distinguishedName } from './tls/verify.js';
export { nextHopDomainOf } from './queue/suspended.js';
export { buildGeneration, type Generation } from './generation.js';
export { probeDomain, type ProbeReport } from './send/probe.js';
export { readDomainDay, resultDomains, utcDay, type DomainDay } from './tlsrpt/results.js';
export { readState as readTlsReportState, type ReportState } from './tlsrpt/schedule.js';
export { dkimRecordText, readDkimKey } from './tlsrpt/dkim.js';
