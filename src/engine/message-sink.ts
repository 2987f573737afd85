// The contract between receiving and queueing: the receive side hands over a complete message,
// the queue answers once it is durably on disk (only then may the client get 250).

export interface DomainSecuredBy {
  partner: string; // the PartnerDomain's domain
  certificateSubject: string;
  certificateFingerprint: string;
  certificateNotAfter?: string; // the partner certificate's expiry, as X509Certificate.validTo
  /** The partner's requireHeaderFromDomain: the marking also needs its domain in From:. */
  requireHeaderFromDomain?: boolean;
}

export interface IncomingMessage {
  /** Envelope sender; "" for the null sender of a DSN. */
  from: string;
  recipients: string[];
  /** The message as it will be delivered: marking headers already applied. */
  body: Buffer;
  receivedAt: Date;
  connector: string;
  remoteAddress: string;
  domainSecured?: DomainSecuredBy;
}

export interface MessageSink {
  /** Resolves with the queue ids once the message is fsync'ed; rejects when it cannot be kept. */
  accept(message: IncomingMessage): Promise<string[]>;
}
