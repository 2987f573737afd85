// Where a receive worker puts what it accepts: its own journal segments (one durable append per
// message, group commit), then a notice to the primary, whose queue adopts the message where it is.
import type { IncomingMessage, MessageSink } from '../message-sink.js';
import type { JournalLocation, WorkerJournal } from '../queue/journal.js';
import { recordsForMessage } from '../queue/queue.js';
import { MessageIds, type ControlRecord } from '../queue/record.js';

export interface AcceptedNotice {
  message: string;
  records: ControlRecord[];
  location: JournalLocation;
}

export class WorkerSink implements MessageSink {
  private readonly ids = new MessageIds();

  constructor(
    private readonly journal: WorkerJournal,
    /** Tells the primary; false when the channel to it is gone. */
    private readonly tell: (notice: AcceptedNotice) => boolean,
    private readonly clock: () => number = Date.now,
  ) {}

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
    if (!this.tell({ message: id, records, location }))
      throw new Error('the engine primary is gone');
    return records.map((record) => record.id);
  }
}
