{
  "variables": {
    # "" for the normal build. scripts/test-asan.mjs and scripts/coverage-native.mjs build the
    # "asan" and "coverage" variants in their own directories (build-asan/, build-coverage/)
    # through a two-line binding.gyp there that sets this and includes this file.
    "async_engine_variant%": ""
  },
  "targets": [
    {
      "target_name": "async_engine",
      "sources": [
        "native/addon.cc",
        "native/codec.cc",
        "native/address.cc",
        "native/uv_drive.cc",
        "native/core/engine_core.cc",
        "native/core/streams.cc",
        "native/core/net.cc",
        "native/core/framing.cc",
        "native/core/resolver.cc",
        "native/core/files.cc",
        "native/core/file_pool.cc",
        "native/core/tls.cc",
        "native/backends/factory.cc",
        "native/backends/epoll.cc",
        "native/backends/poll.cc",
        "native/backends/uring_ring.cc",
        "native/backends/uring.cc",
        "native/backends/threadpool.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=c++17"],
      "cflags_cc": ["-std=c++20", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-O2"],
      "libraries": ["-lpthread"],
      "conditions": [
        ["async_engine_variant=='asan'", {
          # Address and undefined-behaviour sanitizers; the runtimes are preloaded into node.
          # Any UBSan finding is fatal, not just reported.
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }],
        ["async_engine_variant=='coverage'", {
          # gcov line coverage; unoptimised so that lines map one to one onto the source.
          "cflags_cc": ["--coverage", "-g", "-O0"],
          "ldflags": ["--coverage"]
        }]
      ]
    }
  ]
}
