// Starts simulated model servers and an Anteroom gateway as child processes for the SDK tests, and stops them.
// Readiness comes from each process's own "listening" line on stdout; nothing here waits on a timer except the
// upper bound after which a process that never became ready fails the test.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');

/** The gateway executable that `dotnet build src/Anteroom` (or `dotnet test`) produces. */
export const anteroomDll = process.env.ANTEROOM_DLL
  ?? path.join(repoRoot, 'src', 'Anteroom', 'bin', 'Debug', 'net10.0', 'anteroom.dll');

/** Longest a process may take to print its ready line (a cold .NET start on a small machine). */
const READY_TIMEOUT_MS = 60_000;
/** Longest a process may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_TIMEOUT_MS = 10_000;

/** A response header, whether the SDK hands over a fetch Headers object or a plain record. */
export function header(headers, name) {
  return typeof headers?.get === 'function' ? headers.get(name) : headers?.[name];
}

export const OLLAMA_MODEL = 'llama3.1:8b';
export const OPENAI_MODEL = 'qwen2.5:7b';

/** A port nobody listens on right now, on the loopback address. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const live = new Set();
process.on('exit', () => {
  // A last resort if a test file dies before its after hook: never leave a server behind.
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/**
 * Spawns `dotnet anteroom.dll ...args` and resolves once a stdout line matches `ready`.
 * Rejects (with the process's output) if it exits first or stays silent past the bound.
 */
export function startProcess(name, args, ready) {
  if (!existsSync(anteroomDll)) {
    throw new Error(`${anteroomDll} is missing: build it first (dotnet build src/Anteroom).`);
  }

  const child = spawn('dotnet', [anteroomDll, ...args], {
    // No appsettings.json here, so only the arguments configure the process.
    cwd: here,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DOTNET_NOLOGO: '1',
      DOTNET_CLI_TELEMETRY_OPTOUT: '1',
      // Plain console lines, no colour codes, so the ready line can be matched.
      NO_COLOR: '1',
      DOTNET_SYSTEM_CONSOLE_ALLOW_ANSI_COLOR_REDIRECTION: '0',
      Logging__Console__FormatterName: 'simple',
      Logging__Console__FormatterOptions__ColorBehavior: 'Disabled',
    },
  });
  live.add(child);
  // Only timers and requests keep a test file alive: a file that never stops its servers still ends, and then
  // the exit handler above kills them.
  child.unref();
  child.stdout.unref();
  child.stderr.unref();

  const output = [];
  const remember = (line) => {
    output.push(line);
    if (output.length > 200) output.shift();
  };

  const handle = {
    name,
    child,
    output,
    exited: new Promise((resolve) => child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    })),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      let timer;
      const bounded = new Promise((resolve) => { timer = setTimeout(resolve, STOP_TIMEOUT_MS, 'timeout'); });
      const outcome = await Promise.race([handle.exited, bounded]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        child.kill('SIGKILL');
        await handle.exited;
      }
    },
  };

  handle.ready = new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(value);
    };
    const fail = (why) => settle(reject, new Error(
      `${name} ${why}.\n  command: dotnet ${anteroomDll} ${args.join(' ')}\n  output:\n    ${output.join('\n    ')}`));
    const timer = setTimeout(() => fail(`printed no ready line within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);

    const follow = (stream, isStdout) => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (text) => {
        partial += text;
        const lines = partial.split('\n');
        partial = lines.pop();
        for (const raw of lines) {
          const line = raw.replace(/\r$/, '');
          remember(line);
          const match = isStdout ? ready.exec(line) : null;
          if (match) settle(resolve, match);
        }
      });
    };
    follow(child.stdout, true);
    follow(child.stderr, false);
    child.once('error', (error) => fail(`could not start: ${error.message}`));
    // 'close' comes after the last output was read, so the error shows all of it.
    child.once('close', (code, signal) => {
      handle.exitedEarly = !settled;
      fail(`exited (code ${code}, signal ${signal}) before it was ready`);
    });
  });

  return handle;
}

/**
 * A set of processes started together and stopped together. Each process is tracked the moment it is spawned,
 * so `stop()` ends it even if it never became ready.
 */
export class Bed {
  #handles = [];
  #directories = [];

  /** `anteroom simulate` on a free loopback port; resolves (with `url` set) once it listens. `flags` adds faults. */
  simulator(name, models, { parallel = 2, ttftMs = 1, tokensPerSecond = 2000, outputTokens = 12, flags = [] } = {}) {
    return this.#launch(name, (url) => [
      'simulate', '--urls', url, '--models', models.join(','),
      '--parallel', String(parallel), '--ttft-ms', String(ttftMs),
      '--tokens-per-second', String(tokensPerSecond), '--output-tokens', String(outputTokens), ...flags,
    ], /Simulated model server listening on (http:\/\/\S+)/);
  }

  /**
   * `anteroom serve` on a free loopback port in front of `backends` ([{ name, url, protocol, slots?, models }]),
   * with `settings` as `Anteroom:` keys; resolves (with `url` set) once it logs that it listens.
   */
  gateway(name, backends, settings = {}) {
    // Request logs at Information would only fill the pipe; the ready line is Anteroom's own Information log.
    const args = ['--Logging:LogLevel:Microsoft.AspNetCore=Warning'];
    backends.forEach((backend, i) => {
      const key = `--Anteroom:Backends:${i}`;
      args.push(`${key}:Name=${backend.name}`, `${key}:Url=${backend.url}/`, `${key}:Protocol=${backend.protocol}`,
        `${key}:Slots=${backend.slots ?? 2}`);
      backend.models.forEach((model, m) => args.push(`${key}:Models:${m}=${model}`));
    });
    // Estimates that match the fast simulators, so no request is refused for a long expected wait.
    // Each gateway keeps its database and cookie keys in a directory of its own, removed when the bed stops.
    const dataDirectory = mkdtempSync(path.join(tmpdir(), 'anteroom-node-'));
    this.#directories.push(dataDirectory);
    const all = {
      'Data:Directory': dataDirectory,
      'Estimates:TimeToFirstTokenMs': 5,
      'Estimates:TokensPerSecond': 2000,
      'Estimates:OutputTokens': 12,
      ...settings,
    };
    for (const [key, value] of Object.entries(all)) args.push(`--Anteroom:${key}=${value}`);

    return this.#launch(name, (url) => ['serve', '--urls', url, ...args], /Anteroom is listening/);
  }

  /**
   * Starts `dotnet anteroom.dll ...argsFor(url)` on a free port and waits for its ready line. A process that exits
   * before it is ready (its port taken in the meantime, or a signal from outside) gets one more try on a new port.
   */
  async #launch(name, argsFor, ready) {
    const failures = [];
    for (let attempt = 1; attempt <= 2; attempt++) {
      const url = `http://127.0.0.1:${await freePort()}`;
      const handle = startProcess(name, argsFor(url), ready);
      this.#handles.push(handle);
      try {
        await handle.ready;
        handle.url = url;
        return handle;
      } catch (error) {
        failures.push(error.message);
        if (!handle.exitedEarly) break;
      }
    }
    throw new Error(failures.join('\n'));
  }

  async stop() {
    await Promise.all(this.#handles.map((h) => h.stop()));
    for (const directory of this.#directories) rmSync(directory, { recursive: true, force: true });
  }

  /** Runs `build(this)`; if it throws, stops whatever it started. */
  static async start(build) {
    const bed = new Bed();
    try {
      await build(bed);
      return bed;
    } catch (error) {
      await bed.stop();
      throw error;
    }
  }
}

/**
 * The usual test bed: one Ollama-protocol simulator serving OLLAMA_MODEL, one OpenAI-protocol (vLLM-style)
 * simulator serving OPENAI_MODEL, and a gateway in front of both (`bed.url`).
 */
export function startTestBed(settings = {}) {
  return Bed.start(async (bed) => {
    const [ollamaSim, openaiSim] = await Promise.all([
      bed.simulator('ollama simulator', [OLLAMA_MODEL]),
      bed.simulator('openai simulator', [OPENAI_MODEL]),
    ]);
    const gateway = await bed.gateway('gateway', [
      { name: 'ollama-gpu', url: ollamaSim.url, protocol: 'ollama', models: [OLLAMA_MODEL] },
      { name: 'vllm-gpu', url: openaiSim.url, protocol: 'openai', models: [OPENAI_MODEL] },
    ], settings);
    bed.url = gateway.url;
  });
}

/**
 * A gateway whose queue holds one waiting request, in front of one slow OpenAI-protocol simulator with one slot,
 * so that the first request runs (for 10 s before its first token), the second waits and the third is refused.
 */
export function startFullQueueBed() {
  return Bed.start(async (bed) => {
    const sim = await bed.simulator('slow simulator', [OPENAI_MODEL], { parallel: 1, ttftMs: 10_000 });
    const gateway = await bed.gateway('small-queue gateway', [
      { name: 'slow-vllm', url: sim.url, protocol: 'openai', slots: 1, models: [OPENAI_MODEL] },
    ], { 'Queue:MaxQueueLength': 1 });
    bed.url = gateway.url;
  });
}
