{
  "targets": [
    {
      "target_name": "async_engine",
      "sources": [
        "native/addon.cc",
        "native/core/engine_core.cc",
        "native/core/framing.cc",
        "native/core/resolver.cc",
        "native/core/files.cc",
        "native/core/file_pool.cc",
        "native/backends/factory.cc",
        "native/backends/epoll.cc",
        "native/backends/uring_ring.cc",
        "native/backends/uring.cc",
        "native/backends/threadpool.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=c++17"],
      "cflags_cc": ["-std=c++20", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-O2"],
      "libraries": ["-lpthread"]
    }
  ]
}
