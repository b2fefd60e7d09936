// The command table: every module's commands under one look-up, and executeCommand, which
// checks the name and the arity the way Redis does before a command runs.
import { errorReply } from '../protocol.js';
import { arityError } from './replies.js';
import { commands as strings } from './strings.js';
import { commands as keys } from './keys.js';
import { commands as lists } from './lists.js';
import { commands as hashes } from './hashes.js';
import { commands as sets } from './sets.js';
import { commands as zsets } from './zsets.js';
import { commands as server } from './server.js';

export { QUIT } from './replies.js';

/**
 * name → { arity, run(args, client) }. arity follows Redis: n > 0 means exactly n words
 * (command included), -n means at least n.
 */
export const COMMANDS = { ...strings, ...keys, ...lists, ...hashes, ...sets, ...zsets, ...server };
server.command.count = Object.keys(COMMANDS).length;

// Look-ups by the name as sent: lower and upper case hit directly, others are lower-cased.
const TABLE = new Map();
for (const [name, spec] of Object.entries(COMMANDS)) {
  const entry = { run: spec.run, arity: spec.arity, arityError: arityError(name) };
  TABLE.set(name, entry);
  TABLE.set(name.toUpperCase(), entry);
}

/** Redis's reply to a command it does not know, with the first arguments quoted. */
function unknownCommand(args) {
  let shown = '';
  for (let i = 1; i < args.length && shown.length < 128; i++) {
    shown += `'${args[i].slice(0, 128 - shown.length)}' `;
  }
  return errorReply(
    `ERR unknown command '${args[0].slice(0, 128)}', with args beginning with: ${shown}`,
  );
}

/**
 * Runs one request for `client` (its selected database in `client.db`) and returns the reply
 * Buffer, or the QUIT marker.
 */
export function executeCommand(args, client) {
  const name = args[0];
  const cmd = TABLE.get(name) ?? TABLE.get(name.toLowerCase());
  if (cmd === undefined) return unknownCommand(args);
  const { arity } = cmd;
  if (arity > 0 ? args.length !== arity : args.length < -arity) return cmd.arityError;
  client.server.commandsProcessed++;
  return cmd.run(args, client);
}
