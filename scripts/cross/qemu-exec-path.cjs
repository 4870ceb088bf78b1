// Preloaded (NODE_OPTIONS=--require) into every node that qemu-arm64.sh runs under qemu-user.
// binfmt_misc is not set up there, so an arm64 node cannot exec an arm64 child by itself;
// fork() and spawn(process.execPath) go through a wrapper that runs node under qemu instead.
// Children inherit NODE_OPTIONS, so their children do the same.
if (process.env.SHMKIT_QEMU_NODE) process.execPath = process.env.SHMKIT_QEMU_NODE
