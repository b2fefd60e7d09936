// The record the engine keeps for one op: made when its arguments have been checked (a chain's
// stages are all made before any is registered), given an id when it is registered, and kept in
// the op table until it settles. What the native side gets is in `handle`, `timeout`, `a` and
// `b` (their meaning per kind is NativeOp's); the other fields decode and settle its outcome.
import type { Callback } from '../callback.js';
import type { EngineError } from '../errors.js';
import type { File, Listener, Socket } from '../io.js';
import type { LineExpectation } from '../types.js';
import type { PrefixState } from './framing.js';
import type { Kind } from './native.js';

/** A chain's shared state: its stages, and the failure that aborts the later ones. */
export interface ChainState {
  records: OpRecord[];
  error?: EngineError;
  // The error came from a stage the caller did not ask for (name resolution before a connect):
  // the next stage reports it as its own failure rather than as ERR_ABORTED.
  errorIsInternal?: boolean;
}

export class OpRecord {
  /** Given when the op is registered (0 before). */
  id = 0;
  expect: LineExpectation | undefined = undefined;
  regex: RegExp | undefined = undefined;
  match: RegExpExecArray | undefined = undefined;
  encoding: BufferEncoding = 'utf8';
  // acceptWhen: its line delivered as bytes (its expect was given as bytes).
  lineAsBytes = false;
  chain: ChainState | undefined = undefined;
  path: string | undefined = undefined; // open
  direct = false; // open
  // connect: the host (or Unix path) and port it was asked for, named in its failure's message
  // and fields as Node's are (`connect ECONNREFUSED 127.0.0.1:6390`); -1: a path.
  peerHost: string | undefined = undefined;
  peerPort = -1;
  timer: ReturnType<typeof setTimeout> | undefined = undefined; // submitWork's deadline
  // A stage the caller did not ask for (name resolution before a connect): no Callback of its
  // own, and its failure becomes the next stage's.
  internal = false;
  // callSoon / callLater: the function to run.
  fn: (() => void) | undefined = undefined;
  // A socket read counted in its socket's `_nreads` (submitted to the native side).
  counted = false;
  // A regex or length-prefixed read whose report JavaScript has answered: later reports (sent
  // before the answer arrived) are stale.
  answered = false;
  // expectLine with onMismatch: how many more mismatched lines get the reply (-1: unbounded).
  repliesLeft = 0;
  // readUntil with several delimiters: the list as given (its success names the one found).
  delimiters: ReadonlyArray<string | Buffer> | undefined = undefined;
  // readLengthPrefixed: how to cut the record, and the header once known.
  prefix: PrefixState | undefined = undefined;
  // The failure decided in JavaScript mid-op: what its RegExp's exec threw, a length-prefixed
  // read's refused header.
  failWith: EngineError | undefined = undefined;
  // The handshake stage of a TLS listener's accept: that listener, whose close cancels it.
  listener: Listener | undefined = undefined;
  constructor(
    readonly kind: Kind,
    readonly cb: Callback<any> | null,
    public sock: Socket | File | undefined,
    /** The native handle it runs on (0: none yet, or a chain's stage on the socket it makes). */
    public handle: number,
    /** Its deadline in ms, 0 for none; a callLater's delay. */
    public timeout: number,
    /**
     * Its arguments for the native side (for a work task, the checked task). Kept with the record:
     * readInto's buffer stays alive while its op is in flight.
     */
    public a: unknown,
    public b: unknown,
  ) {}
}
