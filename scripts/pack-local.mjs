// `npm run pack:local [-- --out <dir>]`: the two tarballs a project installs shmkit from when
// all it has is a checkout (until a release is on the npm registry): the main package and the
// platform package holding the binary `npm run build` just made for this machine.
//
//   npm install <dir>/shmkit-0.1.0.tgz <dir>/shmkit-linux-x64-gnu-0.1.0.tgz
//
// The main package names only this platform's package in `optionalDependencies` (a published
// release lists all eight), so npm never looks up platform packages on the registry that this
// checkout did not build.
import { execFileSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const outFlag = process.argv.indexOf('--out')
const out = resolve(outFlag >= 0 ? process.argv[outFlag + 1] : join(ROOT, 'dist'))

/** The npm/<dir> of this machine, named as napi-rs names its platform packages. */
function platformDir() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** npm itself, run by this Node: the one that runs this script when it is `npm run pack:local`. */
function npm(args, cwd) {
  const cli = process.env.npm_execpath
  const [command, prefix] = cli && /npm-cli\.js$/.test(cli) ? [process.execPath, [cli]] : ['npm', []]
  return execFileSync(command, [...prefix, ...args], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    shell: command === 'npm' && process.platform === 'win32',
  })
}

const dir = platformDir()
const binary = `${pkg.napi.binaryName}.${dir}.node`
if (!existsSync(join(ROOT, 'npm', dir))) {
  console.error(`pack:local: shmkit has no platform package for ${dir}`)
  process.exit(1)
}
if (!existsSync(join(ROOT, binary))) {
  console.error(`pack:local: ${binary} is missing: run \`npm run build\` first`)
  process.exit(1)
}

const stage = mkdtempSync(join(tmpdir(), 'shmkit-pack-local-'))
try {
  mkdirSync(out, { recursive: true })
  const main = join(stage, 'main')
  mkdirSync(main)
  for (const file of [...pkg.files, 'README.md', 'LICENSE']) copyFileSync(join(ROOT, file), join(main, file))
  const { devDependencies, scripts, overrides, ...published } = pkg
  published.optionalDependencies = { [`${pkg.name}-${dir}`]: pkg.version }
  writeFileSync(join(main, 'package.json'), `${JSON.stringify(published, null, 2)}\n`)

  const platform = join(stage, 'platform')
  cpSync(join(ROOT, 'npm', dir), platform, { recursive: true })
  copyFileSync(join(ROOT, binary), join(platform, binary))

  const pack = (folder) => join(out, JSON.parse(npm(['pack', '--json', '--pack-destination', out], folder))[0].filename)
  const tarballs = [pack(main), pack(platform)]
  console.log(`\nInstall shmkit into any project on this ${dir} machine with:\n\n  npm install ${tarballs.join(' ')}\n`)
} finally {
  rmSync(stage, { recursive: true, force: true })
}
