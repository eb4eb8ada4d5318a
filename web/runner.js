// Replays the plans of a bundle written by the `export` binary (src/export.rs) with the WGSL
// files of shaders/, exactly as src/graph/exec.rs does natively: persistent named buffers shared
// by every plan (the store), per-plan temps, one uniform buffer per plan with a 256-byte slot per
// dispatch at binding 0, storage buffers at bindings 1.., auto layouts, override constants.
// Nothing here knows the model: the bundle says what to run.

const UNIFORM_SLOT = 256;

// `// #include NAME` lines replaced by shaders/NAME.wgsl, recursively (gpu::shader_source).
async function shaderSource(base, name, fetchText, depth = 0) {
  if (depth > 4) throw new Error(`shader include chain too deep at '${name}'`);
  const text = await fetchText(`${base}${name}.wgsl`);
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  let out = '';
  for (const line of lines) {
    const t = line.trim();
    if (t.startsWith('// #include ')) out += await shaderSource(base, t.slice('// #include '.length).trim(), fetchText, depth + 1);
    else out += line + '\n';
  }
  return out;
}

// naga rejects `enable subgroups;`, Tint requires it: added here to the shaders that use
// subgroup builtins (the WebGPU target never picks them; a loader must still be correct).
const usesSubgroups = (src) => /\bsubgroup[A-Z]\w*\s*\(|@builtin\(\s*subgroup_/.test(src);

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r;
}
const fetchText = async (url) => (await fetchOk(url)).text();
const fetchBytes = async (url) => new Uint8Array(await (await fetchOk(url)).arrayBuffer());

// Compiles shaders/<name>.wgsl for each of `names` on a fresh device (with subgroups when the
// adapter has them); returns {name: [error messages]} (empty lists when they compile). For
// tests: every kernel must compile in the browser, not only those a bundle uses.
export async function checkShaders(base, names) {
  const adapter = await navigator.gpu.requestAdapter();
  const sub = adapter.features.has('subgroups');
  const device = await adapter.requestDevice({ requiredFeatures: sub ? ['subgroups'] : [] });
  const out = {};
  for (const name of names) {
    const src = await shaderSource(base.endsWith('/') ? base : base + '/', name, fetchText);
    if (usesSubgroups(src) && !sub) { out[name] = ['uses subgroups; this adapter has none (not compiled)']; continue; }
    device.pushErrorScope('validation');
    const mod = device.createShaderModule({ label: name, code: usesSubgroups(src) ? 'enable subgroups;\n' + src : src });
    const info = await mod.getCompilationInfo();
    const err = await device.popErrorScope();
    out[name] = info.messages.filter((m) => m.type === 'error').map((m) => `line ${m.lineNum}:${m.linePos} ${m.message}`);
    if (err && !out[name].length) out[name].push(err.message);
  }
  device.destroy();
  return out;
}

export class Runner {
  // `bundle`: URL of the folder holding model.json; `shaders`: URL of shaders/.
  static async create({ bundle, shaders, log = () => {} }) {
    if (!navigator.gpu) throw new Error('no WebGPU');
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) throw new Error('WebGPU has no adapter');
    const r = new Runner();
    r.log = log;
    r.bundleUrl = bundle.endsWith('/') ? bundle : bundle + '/';
    r.shaderUrl = shaders.endsWith('/') ? shaders : shaders + '/';
    const t0 = performance.now();
    r.manifest = await (await fetchOk(r.bundleUrl + 'model.json')).json();
    const m = r.manifest;
    const [weights, examples, styles, plans, sources] = await Promise.all([
      fetchBytes(r.bundleUrl + m.weights_file),
      fetchBytes(r.bundleUrl + m.examples.file),
      m.examples.styles_file ? fetchBytes(r.bundleUrl + m.examples.styles_file) : null,
      Promise.all(Object.entries(m.plans).map(async ([k, f]) => [k, await (await fetchOk(r.bundleUrl + f)).json()])),
      Promise.all(m.shaders.map(async (s) => [s, await shaderSource(r.shaderUrl, s, fetchText)])),
    ]);
    r.examples = examples;
    r.styles = styles;
    r.plans = Object.fromEntries(plans);
    r.sources = Object.fromEntries(sources);
    const needSubgroups = sources.some(([, src]) => usesSubgroups(src));
    if (needSubgroups && !adapter.features.has('subgroups')) throw new Error('a shader uses subgroups, which this adapter lacks');
    // WebGPU's default limits: what Target::webgpu() compiled the plans for.
    r.device = await adapter.requestDevice({ requiredFeatures: needSubgroups ? ['subgroups'] : [] });
    r.adapterInfo = adapter.info || {};
    r.device.addEventListener('uncapturederror', (e) => console.error(`WebGPU error: ${e.error.message}`));
    r.device.lost.then((i) => { if (i.reason !== 'destroyed') console.error(`WebGPU device lost: ${i.message}`); });
    r.loadMs = performance.now() - t0;
    r.store = new Map();
    const t1 = performance.now();
    await r.compile();
    r.compileMs = performance.now() - t1;
    for (const w of m.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      r.write(w.name, w.shape, new Float32Array(weights.buffer, weights.byteOffset + w.offset, n));
    }
    r.stepSizes = {};
    return r;
  }

  buffer(name, shape, bytes) {
    const have = this.store.get(name);
    if (have) {
      if (have.bytes !== bytes) throw new Error(`store: '${name}' holds ${have.shape}, a plan wants ${shape}`);
      return have.buffer;
    }
    const buffer = this.storage(name, bytes);
    this.store.set(name, { buffer, shape, bytes });
    return buffer;
  }

  storage(label, bytes) {
    return this.device.createBuffer({
      label,
      size: Math.ceil(Math.max(bytes, 16) / 16) * 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  }

  // Shader modules, pipelines and bind groups of every plan; fails naming the shader and
  // Tint's message when one does not compile.
  async compile() {
    const d = this.device;
    this.modules = {};
    for (const [name, src] of Object.entries(this.sources)) {
      const code = usesSubgroups(src) ? 'enable subgroups;\n' + src : src;
      d.pushErrorScope('validation');
      const mod = d.createShaderModule({ label: name, code });
      const info = await mod.getCompilationInfo();
      const err = await d.popErrorScope();
      const errors = info.messages.filter((x) => x.type === 'error');
      if (errors.length || err) {
        throw new Error(`shaders/${name}.wgsl does not compile in this browser: ` +
          (errors.map((x) => `line ${x.lineNum}:${x.linePos} ${x.message}`).join('; ') || err.message));
      }
      this.modules[name] = mod;
    }
    const pipelines = new Map();
    const pipeline = (disp) => {
      const consts = Object.fromEntries(disp.constants);
      const key = `${disp.shader}::${disp.entry}::${JSON.stringify(Object.entries(consts).sort())}`;
      if (!pipelines.has(key)) {
        pipelines.set(key, d.createComputePipelineAsync({
          label: `${disp.shader}::${disp.entry}`,
          layout: 'auto',
          compute: { module: this.modules[disp.shader], entryPoint: disp.entry, constants: consts },
        }).catch((e) => { throw new Error(`shaders/${disp.shader}.wgsl entry '${disp.entry}' with ${JSON.stringify(consts)}: ${e.message}`); }));
      }
      return pipelines.get(key);
    };
    // Every pipeline is requested before any is awaited, so the browser may compile them in
    // parallel.
    for (const plan of Object.values(this.plans)) plan.dispatches.forEach(pipeline);
    await Promise.all(pipelines.values());
    this.exes = {};
    for (const [key, plan] of Object.entries(this.plans)) {
      const bufs = plan.buffers.map((b) => (b.kind === 'temp' ? this.storage(`${key}/${b.name}`, b.bytes) : this.buffer(b.name, b.shape, b.bytes)));
      const words = new Uint32Array(plan.uniforms);
      const uniforms = d.createBuffer({ label: `${key}/uniforms`, size: Math.max(words.byteLength, 16), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      d.queue.writeBuffer(uniforms, 0, words);
      const steps = [];
      for (const disp of plan.dispatches) {
        const p = await pipeline(disp);
        d.pushErrorScope('validation');
        const bind = d.createBindGroup({
          layout: p.getBindGroupLayout(0),
          entries: [{ binding: 0, resource: { buffer: uniforms, offset: disp.uniform_offset, size: UNIFORM_SLOT } },
            ...disp.bindings.map((k, i) => ({ binding: i + 1, resource: { buffer: bufs[k] } }))],
        });
        const err = await d.popErrorScope();
        if (err) throw new Error(`plan ${key}: binding ${disp.op} (${disp.shader}.wgsl::${disp.entry}): ${err.message}`);
        steps.push({ pipeline: p, bind, wg: disp.workgroups });
      }
      // The first `prelude` steps run once per replay of K repeats (Plan::prelude).
      const prelude = Math.min(plan.prelude || 0, steps.length);
      this.exes[key] = { steps, prelude, uniforms, words, original: words.slice(), params: plan.params || [] };
    }
    this.pipelineCount = pipelines.size;
  }

  // Sets the Langevin step sizes ({z_step, x_step, ...}): each plan lists the uniform words that
  // hold its runtime parameters (`plan.params`, as Executable::set_param uses natively). Values
  // not given are the bundle's, bit for bit.
  setStepSizes(values) {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (const exe of Object.values(this.exes)) {
      if (!exe.params.length) continue;
      exe.words.set(exe.original);
      for (const p of exe.params) {
        if (values[p.name] === undefined) continue;
        f[0] = values[p.name];
        for (const w of p.words) exe.words[w] = u[0];
      }
      this.device.queue.writeBuffer(exe.uniforms, 0, exe.words);
    }
  }

  write(name, shape, data) {
    const buf = this.buffer(name, shape, data.byteLength);
    this.device.queue.writeBuffer(buf, 0, data);
  }

  // rng_state(seed): [seed_lo, seed_hi, step 0, 0] as u32 words (stored as f32 bits natively).
  seed(seed) {
    const s = BigInt(seed);
    this.write(this.manifest.vars.rng, [4], new Uint32Array([Number(s & 0xffffffffn), Number((s >> 32n) & 0xffffffffn), 0, 0]));
  }

  // Records [{phase key, times}] into one compute pass and submits once; resolves when done.
  // Like graph::exec::replay, a plan's prelude runs once, then its other steps `times` times.
  async replay(list) {
    const enc = this.device.createCommandEncoder({ label: 'replay' });
    const pass = enc.beginComputePass({ label: 'replay' });
    const record = (steps) => {
      for (const s of steps) {
        pass.setPipeline(s.pipeline);
        pass.setBindGroup(0, s.bind);
        pass.dispatchWorkgroups(s.wg[0], s.wg[1], s.wg[2]);
      }
    };
    for (const { key, times } of list) {
      const exe = this.exes[key];
      if (!exe) throw new Error(`the bundle has no plan '${key}'`);
      if (times <= 0) continue;
      record(exe.steps.slice(0, exe.prelude));
      const body = exe.steps.slice(exe.prelude);
      for (let t = 0; t < times; t++) record(body);
    }
    pass.end();
    this.device.queue.submit([enc.finish()]);
    await this.device.queue.onSubmittedWorkDone();
  }

  async read(name) {
    const b = this.store.get(name);
    if (!b) throw new Error(`store has no tensor named '${name}'`);
    const staging = this.device.createBuffer({ size: b.bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(b.buffer, 0, staging, 0, b.bytes);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out;
  }
}
