// async-engine: callback-based asynchronous I/O for Node.js over io_uring, epoll or a native
// thread pool, behind one interface of compound operations.
export { AsyncEngine, createEngine } from './engine/engine.js';
export type { AcceptedChain } from './engine/engine.js';
export { callSoonThreadsafe } from './work/threadsafe.js';
export type { ThreadsafeEntry } from './work/threadsafe.js';
export { Callback } from './engine/callback.js';
export type { CallbackLike, CallbackSlots, FailureSocket } from './engine/callback.js';
export { ENGINE_ERROR_CODES, EngineError } from './engine/errors.js';
export type { EngineErrorCode } from './engine/errors.js';
export { Socket, Listener, File } from './engine/io.js';
export type { TlsCipher } from './engine/io.js';
export { availableImpls } from './impl/registry.js';
export { toDuplex } from './streams/duplex.js';
export type { DuplexOptions } from './streams/duplex.js';
export type {
  Pem,
  StartTlsOptions,
  TlsClientOptions,
  TlsConnectOption,
  TlsServerOptions,
} from './engine/tls.js';
export { EnginePromises } from './promises/index.js';
export type { PromiseOpOptions, ChainResult } from './promises/index.js';
export type { ServeHandle, ServeOptions } from './engine/serve.js';
export type { LineHandler, ServeLinesOptions } from './engine/serve-lines.js';
export type { ChunksOptions, LinesOptions } from './promises/iterate.js';
export type {
  AddrInfo,
  BoundedOptions,
  AcceptExpectation,
  AcceptWhenOptions,
  ChainReadOptions,
  CommonOptions,
  ConnectAddress,
  DriveMode,
  EngineConfig,
  EngineStats,
  ImplAvailability,
  FileStat,
  FilteredConnections,
  FsyncOptions,
  ImplName,
  ListenOptions,
  SocketOptions,
  SocketOptionValues,
  LengthPrefixedOptions,
  LengthPrefixedRecord,
  LineExpectation,
  LineOptions,
  ChainLineOptions,
  MismatchReply,
  ListenerAddress,
  ListenerOptionValues,
  OpOptions,
  OpenOptions,
  PositionOptions,
  RegexResult,
  ReadUntilResult,
  SocketTimeouts,
  TcpListenOptions,
  TimerHandle,
  UnixListenOptions,
  WorkTask,
  WriteData,
} from './engine/types.js';
