// The generation slot: one running generation, changed in two phases. A prepared generation is
// served only by what was made ready for it, becomes current only on commit (every subscriber told,
// in order), and an abort leaves the running one as if nothing happened.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { GenerationSlot, SlotBusyError } from '../../src/engine/runtime/generation-slot.js';
import { runtimeConfig } from '../support/runtime-config.js';

const config = runtimeConfig();
const generation = (number: number): Generation => buildGeneration(config, number);

describe('generation slot', () => {
  it('keeps the running generation until commit, then tells each subscriber in order', () => {
    const slot = new GenerationSlot();
    const told: string[] = [];
    slot.subscribe((next, previous) => told.push(`a ${next.number} after ${previous?.number}`));
    slot.subscribe((next, previous) => told.push(`b ${next.number} after ${previous?.number}`));
    assert.equal(slot.current, undefined);
    assert.equal(slot.number, 0);

    const first = slot.prepare(generation(1));
    assert.equal(slot.current, undefined, 'prepared is not current');
    assert.equal(first.serving().number, 1, 'what was made ready for it serves it');
    assert.deepEqual(told, []);
    slot.commit(first);
    assert.equal(slot.number, 1);
    assert.deepEqual(told, ['a 1 after undefined', 'b 1 after undefined']);

    const second = slot.prepare(generation(2));
    assert.equal(slot.number, 1);
    slot.commit(second);
    assert.deepEqual(told.slice(2), ['a 2 after 1', 'b 2 after 1']);
  });

  it('forgets an aborted generation: the running one stays and nobody is told', () => {
    const slot = new GenerationSlot();
    slot.commit(slot.prepare(generation(1)));
    let told = 0;
    slot.subscribe(() => told++);
    const refused = slot.prepare(generation(2));
    slot.abort(refused);
    assert.equal(slot.number, 1);
    assert.equal(told, 0);
    assert.throws(
      () => slot.commit(refused),
      /cannot commit generation 2: it is not the one prepared/,
    );
    // The slot is free again.
    slot.commit(slot.prepare(generation(3)));
    assert.equal(slot.number, 3);
    assert.equal(told, 1);
  });

  it('prepares one generation at a time', () => {
    const slot = new GenerationSlot();
    const pending = slot.prepare(generation(1));
    assert.throws(() => slot.prepare(generation(2)), SlotBusyError);
    slot.commit(pending);
    assert.equal(slot.number, 1);
  });

  it('serves a newer committed generation to what was prepared for an older one', () => {
    const slot = new GenerationSlot();
    const older = slot.prepare(generation(4));
    slot.commit(older);
    slot.commit(slot.prepare(generation(5)));
    assert.equal(older.serving().number, 5);
  });

  it('tells every subscriber even when one throws, then throws the first error', () => {
    const slot = new GenerationSlot();
    const told: number[] = [];
    slot.subscribe(() => {
      throw new Error('first subscriber broke');
    });
    slot.subscribe((next) => told.push(next.number));
    assert.throws(() => slot.commit(slot.prepare(generation(1))), /first subscriber broke/);
    assert.equal(slot.number, 1);
    assert.deepEqual(told, [1]);
  });

  it('stops telling a subscriber that unsubscribed', () => {
    const slot = new GenerationSlot();
    let told = 0;
    const unsubscribe = slot.subscribe(() => told++);
    slot.commit(slot.prepare(generation(1)));
    unsubscribe();
    slot.commit(slot.prepare(generation(2)));
    assert.equal(told, 1);
  });
});
