// The types the layers share: the compiled configuration the engine runs (RuntimeConfig),
// what the engine reports it runs (EngineState), the reconciler's Plan, and Diagnostics.
// Field names follow schemas/, which is the single source of names and defaults.

export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export const API_VERSION = 'domsec.io/v1alpha1';

export const KINDS = [
  'Organization',
  'Certificate',
  'TrustAnchor',
  'PartnerDomain',
  'SendConnector',
  'ReceiveConnector',
  'TlsPolicy',
] as const;
export type Kind = (typeof KINDS)[number];

// ---------------------------------------------------------------------------------------------
// Manifest problems

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  code: string; // DS001..., or SCHEMA, YAML, LOAD
  severity: Severity;
  message: string;
  file: string;
  line: number; // 1-based
  col: number; // 1-based
  hint?: string;
}

// ---------------------------------------------------------------------------------------------
// Specs as the engine runs them: defaults applied, references kept as names, files read.
// Durations ("15m") and sizes ("25MB") stay as written; src/units.ts parses them.

export interface StaticRoute {
  host: string;
  port?: number;
}

export type RelayProtocol = 'smtp' | 'lmtp';
export type RelayTls = 'none' | 'opportunistic' | 'required';

/** An internal mailbox server that takes mail for the accepted domains. */
export interface RelayDelivery {
  host: string; // "host", "host:port" or "[v6]:port"
  protocol: RelayProtocol;
  tls: RelayTls;
}

/**
 * Exactly one: a Maildir root (a relative path is taken from the engine's state directory), or
 * a relay to an internal mailbox server.
 */
export type MailboxDelivery =
  { maildir: string; relay?: never } | { relay: RelayDelivery; maildir?: never };

export interface OrganizationSpec {
  hostname: string;
  acceptedDomains: string[];
  certificate: string;
  delivery: MailboxDelivery;
  /** The queue itself lives in <state>/queue: it is the node's, not the configuration's. */
  queue: { retry: string[]; expireAfter: string; delayNotice: string };
  /**
   * `validating`: the servers validate DNSSEC and their AD bit is believed (DANE needs it).
   * Absent in configurations written before it: false.
   */
  resolver: { servers: string[]; validating?: boolean; static: Record<string, StaticRoute[]> };
  admin: { listen: string; tokenFile?: string };
  /**
   * The MTA-STS policy we publish for our accepted domains (`dns records`); absent: none.
   * `listen`: where serve answers it over HTTPS; absent: not served.
   */
  mtaSts?: { mode: 'enforce' | 'testing' | 'none'; mx: string[]; maxAge: number; listen?: string };
  /** We publish a TLSA 3 1 1 record of our key: plan gates a change of that key. Absent: false. */
  publishesTlsa?: boolean;
  /**
   * The TLS reports (RFC 8460) we send to other domains. `dkim` signs those sent by mail (a
   * report by mail without a signature is not sent); `domain` absent: the reports' submitter
   * domain; `keyFile` absolute once compiled.
   */
  tlsReporting?: { dkim?: { selector: string; domain?: string; keyFile: string } };
  /**
   * MTA-STS policy hosts may be at loopback, private, link-local or reserved addresses (labs and
   * tests). Absent: false, such a host is not fetched from.
   */
  allowInternalPolicyHosts?: boolean;
}

export interface CertificateSpec {
  services: string[];
  certPem: string; // the leaf
  chainPem: string[]; // intermediates, leaf excluded
  keyPem: string; // secret: never in state, plans, logs or output
  fingerprint: string; // SHA-256 of the leaf, as X509Certificate.fingerprint256
}

export interface TrustAnchorSpec {
  /** The platform's public CA store instead of a PEM. */
  system: boolean;
  pem?: string;
  crlPem?: string;
  fingerprint?: string; // SHA-256 of pem's certificate
}

export type CertificateNameMatch = 'domain' | 'subdomain';
export type ClientCertificatePurpose = 'standard' | 'strict';

export interface PartnerDomainSpec {
  domain: string;
  domainSecure: { send: boolean; receive: boolean };
  /** Names of TrustAnchor objects, or "system". */
  trustAnchors: string[];
  certificateNames: string[];
  certificateNameMatch: CertificateNameMatch;
  clientCertificatePurpose: ClientCertificatePurpose;
  remoteIPRanges: string[];
  /** The marking also needs the header From: domain to be the partner's. */
  requireHeaderFromDomain: boolean;
}

export type SendRouting = { dnsMx: Record<string, never> } | { smartHosts: string[] };
export type ProtocolLogging = 'none' | 'verbose';

export interface SendConnectorSpec {
  addressSpaces: string[];
  cost: number;
  routing: SendRouting;
  port: number;
  domainSecure: boolean;
  requireTls: boolean;
  maxMessageSize: string;
  protocolLogging: ProtocolLogging;
}

/** How far a published TLS policy (DANE, MTA-STS) is followed for the domains a TlsPolicy covers. */
export type PolicyLevel = 'disable' | 'optional' | 'require';

export interface TlsPolicySpec {
  addressSpaces: string[];
  dane: PolicyLevel;
  mtaSts: PolicyLevel;
  requireTls: boolean;
}

export interface ReceiveConnectorSpec {
  bindings: string[]; // "ip:port", "[v6]:port"
  remoteIPRanges: string[];
  authMechanisms: string[];
  permitRelay: boolean;
  /** MAIL FROM one of our accepted domains from clients that may not relay (Exchange's permission). */
  acceptAuthoritativeDomainSenders: boolean;
  domainSecure: boolean;
  requireTls: boolean;
  maxMessageSize: string;
  protocolLogging: ProtocolLogging;
  // Limits, named after Exchange's Set-ReceiveConnector parameters.
  maxInboundConnection: number;
  maxInboundConnectionPerSource: number;
  connectionInactivityTimeout: string;
  /** The inactivity timeout, and the time to EHLO/HELO, while the connector is under stress. */
  stressInactivityTimeout: string;
  connectionTimeout: string;
  maxRecipientsPerMessage: number;
  maxHeaderSize: string;
}

export interface Named<S> {
  name: string;
  spec: S;
}

/** Where a configuration came from, kept with each applied generation. */
export interface ConfigSource {
  description: string; // e.g. the manifest directories
  revision?: string; // Git revision when the manifests are a checkout
  dirty?: boolean; // true: the manifests had changes that revision does not hold (git describe --dirty)
}

export interface RuntimeConfig {
  organization: Named<OrganizationSpec>;
  certificates: Named<CertificateSpec>[];
  trustAnchors: Named<TrustAnchorSpec>[];
  partners: Named<PartnerDomainSpec>[];
  sendConnectors: Named<SendConnectorSpec>[];
  receiveConnectors: Named<ReceiveConnectorSpec>[];
  /** Absent in configurations written before the kind: none (every domain gets the defaults). */
  tlsPolicies?: Named<TlsPolicySpec>[];
  source?: ConfigSource;
}

// ---------------------------------------------------------------------------------------------
// What the engine reports: the objects it runs (secrets replaced by fingerprints), its
// listeners as really bound, and its queues.

export interface ObjectState {
  kind: Kind;
  name: string;
  spec: JsonObject;
}

export interface ListenerState {
  connectors: string[];
  binding: string;
  address: string | null;
  port: number | null;
  listening: boolean;
  error?: string;
}

export type QueueStatus = 'ready' | 'active' | 'retry' | 'suspended';

export interface QueueSummary {
  nextHopDomain: string;
  messageCount: number;
  status: QueueStatus;
  lastError: string | null;
  nextRetryAt: string | null; // ISO time
}

export interface QueuedMessageSummary {
  id: string;
  nextHopDomain: string;
  from: string;
  recipients: string[];
  size: number;
  receivedAt: string;
  attempts: number;
  lastError: string | null;
  nextRetryAt: string | null;
}

export interface EngineState {
  formatVersion: 1;
  /**
   * The engine identity of its state directory (made once, kept there): a plan is bound to it
   * as well as to the generation. Absent only from engines older than the field.
   */
  engineId?: string;
  generation: number; // 0 before the first apply
  appliedAt: string | null;
  source: ConfigSource | null;
  hostname: string | null;
  objects: ObjectState[];
  listeners: ListenerState[];
  queues: QueueSummary[];
}

export interface ApplyResult {
  generation: number;
  appliedAt: string;
}

// ---------------------------------------------------------------------------------------------
// Plans: computed by reconcile/plan, rendered by reconcile/render, never the other way round.

/** replace: the object is taken down and set up again (its listeners rebound), Terraform's -/+. */
export type ChangeAction = 'create' | 'update' | 'replace' | 'delete';
export type SecurityImpact = 'weakens' | 'strengthens' | 'none';

export interface FieldChange {
  path: string; // dotted, e.g. "domainSecure.send"
  before: JsonValue | null;
  after: JsonValue | null;
}

export interface Change {
  kind: Kind;
  name: string;
  action: ChangeAction;
  before: JsonObject | null;
  after: JsonObject | null;
  fields: FieldChange[];
  security: SecurityImpact;
  reasons: string[]; // why it weakens or strengthens
  /** For replace: why an update is not enough (bindings change, a listener failed). */
  replaceReasons?: string[];
  /**
   * For create and delete: the spec's fields that hold their schema default (in spec order),
   * which the text plan counts on one line instead of listing. Absent from older saved plans.
   */
  defaults?: string[];
}

/** Something a reviewer should know before applying; never blocks the apply by itself. */
export interface PlanWarning {
  code: 'certificate-expiring' | 'certificate-expired' | 'queued-mail' | 'tlsa-not-compared';
  kind: Kind;
  name: string;
  message: string;
}

/** Exchange's two transport-wide lists, as the plan changes them (admins search for these). */
export interface DomainSecureListChanges {
  tlsSendDomainSecureList: { add: string[]; remove: string[] };
  tlsReceiveDomainSecureList: { add: string[]; remove: string[] };
}

/**
 * A receive connector of the planned configuration that permits relay: who may send mail anywhere
 * through us, its remoteIPRanges split by what they cover (src/relay-ranges.ts).
 */
export interface RelayPermission {
  connector: string;
  /** Where it listens beyond loopback; empty when only this machine can connect. */
  exposedBindings: string[];
  /** `loopback`: this machine only (or every binding is on loopback); the widest class otherwise. */
  reach: 'loopback' | 'private-networks' | 'beyond-private-networks';
  loopback: string[];
  privateNetworks: string[];
  beyondPrivateNetworks: string[];
}

export interface Plan {
  formatVersion: 1;
  /** The engine generation this plan was computed against; apply refuses it once that moved. */
  baseGeneration: number;
  changes: Change[];
  domainSecureLists: DomainSecureListChanges;
  /** Relay-permitting connectors after the apply; absent from plans saved before it was added. */
  relay?: RelayPermission[];
  warnings: PlanWarning[];
  summary: { add: number; change: number; replace: number; delete: number };
}

// ---------------------------------------------------------------------------------------------
// SMTP replies as the engine gives them; src/engine/replies.ts holds the table.

export interface SmtpReply {
  code: number;
  enhanced: string; // "4.7.5"
  text: string;
}

// ---------------------------------------------------------------------------------------------
// Saved plans (`plan --out FILE`, `apply FILE`): the plan and the exact configuration it applies.
// The configuration holds private keys: the file is written 0600 (docs/plan-format.md).

export interface SavedPlan {
  formatVersion: 1;
  kind: 'SavedPlan';
  createdAt: string; // ISO time
  /**
   * The engine the plan was made against (EngineState.engineId): any other engine refuses it as
   * stale, even at the same generation. Absent only from plans saved before the field.
   */
  engineId?: string;
  plan: Plan;
  config: RuntimeConfig;
}

// ---------------------------------------------------------------------------------------------
// The engine's applied generations (`domsec history`, `domsec rollback GEN`) and the reconcile
// status a watcher reports to it (`domsec status`), in the Kubernetes manner: Ready, or why not.

export interface HistoryEntry {
  generation: number;
  appliedAt: string; // ISO time
  source: ConfigSource | null;
  /** Set when this generation re-applied an older one. */
  rollbackOf?: number;
}

export type ReconcileOutcome = 'applied' | 'unchanged' | 'invalid' | 'failed';

export interface ReconcileReport {
  outcome: ReconcileOutcome;
  /** The generation the engine runs after the attempt. */
  generation: number;
  error: string | null;
  /** Who reconciles, e.g. "watch examples/adatum". */
  reconciler: string;
  /** How long the attempt took, reading the manifests included (ms); older reconcilers omit it. */
  durationMs?: number;
}

export interface ReconcileStatus {
  formatVersion: 1;
  /**
   * True when the last attempt, from any source (apply, a saved plan, watch, rollback, serve at
   * start), left the engine running what it was asked to, and nothing drifted since (every
   * listener listening). `reason` says why not.
   */
  ready: boolean;
  /** Why the engine is not Ready; null when it is. */
  reason?: string | null;
  /** The engine identity of the state directory (EngineState.engineId). */
  engineId?: string;
  generation: number;
  lastAppliedGeneration: number | null;
  lastAppliedAt?: string | null;
  /** What made the last applied generation: "apply", "rollback of generation 3", "serve -f ...". */
  lastAppliedBy?: string | null;
  lastAttemptAt: string | null;
  lastAttemptOutcome: ReconcileOutcome | null;
  lastAttemptError: string | null;
  /** Who made the last attempt (a reconciler, apply, rollback, serve). */
  lastAttemptBy?: string | null;
  /** The reconciler reporting now: null once its reports stopped for longer than it promised. */
  reconciler: string | null;
  /** The last reconciler that reported, active or not, and when; null when none ever did. */
  lastReconciler?: string | null;
  reconcilerReportedAt?: string | null;
  /** When the reconciler's entry lapses unless it reports again. */
  reconcilerExpiresAt?: string | null;
}
