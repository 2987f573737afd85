// The contract between receiving and queueing: the receive side hands over a message, whole in
// memory when it is small or written into the sink's storage as it arrived (a spooled body), and
// the queue answers once it is durably on disk (only then may the client get 250).

export interface DomainSecuredBy {
  partner: string; // the PartnerDomain's domain
  certificateSubject: string;
  certificateFingerprint: string;
  certificateNotAfter?: string; // the partner certificate's expiry, as X509Certificate.validTo
  /** The partner's requireHeaderFromDomain: the marking also needs its domain in From:. */
  requireHeaderFromDomain?: boolean;
}

/** A message's envelope and what the queue records about its arrival. */
export interface IncomingEnvelope {
  /** Envelope sender; "" for the null sender of a DSN. */
  from: string;
  recipients: string[];
  receivedAt: Date;
  connector: string;
  remoteAddress: string;
  domainSecured?: DomainSecuredBy;
}

export interface IncomingMessage extends IncomingEnvelope {
  /** The message as it will be delivered: marking headers already applied. */
  body: Buffer;
}

/**
 * A body being written into the sink's storage as it arrives, in order, marking headers first.
 * Not yet durable: the sink's spool.accept() makes it so; discard() removes what was written.
 */
export interface SpooledBody {
  /** Bytes written so far. */
  readonly size: number;
  write(chunks: readonly Buffer[]): Promise<void>;
  /** Removes what was written (a refused message, a client gone); safe to call more than once. */
  discard(): Promise<void>;
}

export interface SpooledMessage extends IncomingEnvelope {
  body: SpooledBody;
}

/** Large bodies go to storage as they arrive, so that a message's memory does not grow with it. */
export interface BodySpool {
  open(): Promise<SpooledBody>;
  /** accept() for a body written through open(): resolves once body and envelope are durable. */
  accept(message: SpooledMessage): Promise<string[]>;
}

export interface MessageSink {
  /** Resolves with the queue ids once the message is fsync'ed; rejects when it cannot be kept. */
  accept(message: IncomingMessage): Promise<string[]>;
  /** Absent: the receive side holds every message whole in memory (test sinks). */
  spool?: BodySpool;
}
