import { describe, expect, it } from 'vitest';
import { parseAuthor } from './engine-writer.js';

describe('parseAuthor', () => {
  it('reads "Name <email>"', () => {
    expect(parseAuthor('Keelson Bot <bot@example.com>')).toEqual({ name: 'Keelson Bot', email: 'bot@example.com' });
  });
  it('refuses anything else with an example', () => {
    expect(() => parseAuthor('bot@example.com')).toThrow('commit author "bot@example.com" is not "Name <email>", e.g. "Keelson <keelson@example.com>"');
    expect(() => parseAuthor('Bot <not-an-email>')).toThrow(/is not "Name <email>"/);
  });
});
