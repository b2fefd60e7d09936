// ava's configuration for `npm run test:install`: only the packed-tarball install test
// (test/install.test.ts), which `npm test` leaves out because it packs and installs the package.
export default {
  files: ['dist-test/test/install.test.js'],
  timeout: '20m',
  concurrency: 1,
  workerThreads: false,
};
