// Replies and error texts shared by the command modules, byte for byte as redis-server 7.0
// sends them.
import { errorReply } from '../protocol.js';

export const WRONGTYPE = errorReply(
  'WRONGTYPE Operation against a key holding the wrong kind of value',
);
export const NOT_INTEGER = errorReply('ERR value is not an integer or out of range');
export const NOT_FLOAT = errorReply('ERR value is not a valid float');
export const OVERFLOW = errorReply('ERR increment or decrement would overflow');
export const SYNTAX = errorReply('ERR syntax error');
export const NOT_POSITIVE = errorReply('ERR value is out of range, must be positive');
export const NULL_ARRAY = Buffer.from('*-1\r\n');

/** Marker returned by QUIT: reply +OK, then close. */
export const QUIT = Symbol('quit');

export function arityError(name) {
  return errorReply(`ERR wrong number of arguments for '${name}' command`);
}

/** `ERR unknown subcommand 'x'. Try NAME HELP.` */
export function unknownSubcommand(command, sub) {
  return errorReply(
    `ERR unknown subcommand '${sub.slice(0, 128)}'. Try ${command.toUpperCase()} HELP.`,
  );
}
