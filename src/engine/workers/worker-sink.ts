// Where a receive worker puts what it accepts: a message in memory goes to its own journal
// segments (one durable append, group commit); a large one is written into the file store as it
// arrives and committed there, as the queue does it. Then a notice to the primary, whose queue
// adopts the message where it is.
import type { BodySpool, IncomingMessage, MessageSink, SpooledMessage } from '../message-sink.js';
import type { JournalLocation, WorkerJournal } from '../queue/journal.js';
import { recordsForMessage } from '../queue/queue.js';
import { MessageIds, type ControlRecord } from '../queue/record.js';
import { BodyFile, QueueStore } from '../queue/store.js';

export type AcceptedNotice =
  | { message: string; records: ControlRecord[]; location: JournalLocation }
  | { message: string; records: ControlRecord[]; location?: undefined };

export class WorkerSink implements MessageSink {
  private readonly ids = new MessageIds();
  private readonly store: QueueStore;

  constructor(
    private readonly journal: WorkerJournal,
    /** The queue's directory (its file store: data/ and control/). */
    queueDirectory: string,
    /** Tells the primary; false when the channel to it is gone. */
    private readonly tell: (notice: AcceptedNotice) => boolean,
    private readonly clock: () => number = Date.now,
  ) {
    this.store = new QueueStore(queueDirectory);
  }

  /**
   * Durable in the journal segment, then told. A primary that is gone gets no 250 answered in
   * its absence: the client is refused (451) and sends again, and the next start finds the
   * message in the segment too (a duplicate at worst, never a loss).
   */
  async accept(message: IncomingMessage): Promise<string[]> {
    const now = this.clock();
    const id = this.ids.next(now);
    const records = recordsForMessage(id, message, message.body.length, now);
    const location = await this.journal.accept(id, records, message.body);
    return this.told({ message: id, records, location });
  }

  /** Large bodies: into data/ as they arrive, committed with their records in control/. */
  readonly spool: BodySpool = {
    open: () => {
      const id = this.ids.next(this.clock());
      return BodyFile.create(id, this.store.bodyPath(id));
    },
    accept: (message) => this.acceptSpooled(message),
  };

  private async acceptSpooled(message: SpooledMessage): Promise<string[]> {
    const { body } = message;
    if (!(body instanceof BodyFile)) throw new TypeError('a body this sink did not open');
    let records: ControlRecord[];
    try {
      records = recordsForMessage(body.message, message, body.size, this.clock());
    } catch (error) {
      await body.discard();
      throw error;
    }
    // On failure the store removes the body too: a refused message leaves nothing behind.
    await this.store.commit(body.message, body, records);
    return this.told({ message: body.message, records });
  }

  private told(notice: AcceptedNotice): string[] {
    if (!this.tell(notice)) throw new Error('the engine primary is gone');
    return notice.records.map((record) => record.id);
  }
}
