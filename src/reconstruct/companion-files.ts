/**
 * The small non-weight files a Hugging Face checkpoint folder needs beside its weights so
 * `from_pretrained` loads it (model config, generation config, tokenizer). Copied into
 * reconstructed checkpoint folders; optimizer, scheduler, RNG and trainer state never are
 * (docs/formats.md, "Hugging Face Trainer output folder").
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../output/atomic.ts';

const companionPatterns = [
  /^(config|generation_config|preprocessor_config|processor_config|feature_extractor_config|image_processor_config|adapter_config)\.json$/,
  /^(tokenizer(_config)?\.json|tokenizer\.model|special_tokens_map\.json|added_tokens\.json|vocab\.(json|txt)|merges\.txt|spiece\.model|sentencepiece\.bpe\.model|chat_template\.(json|jinja))$/,
];

/** Above this a file is not a config or tokenizer file (tokenizer.json of large vocabularies is ~30 MB). */
const MAX_COMPANION_BYTES = 64 << 20;

export function isCompanionFile(name: string): boolean {
  return companionPatterns.some((re) => re.test(name));
}

/**
 * Copies the companion files of checkpoint folder `fromDir` into `toDir` (atomically each),
 * skipping names already written there. Returns the names copied.
 */
export async function copyCompanionFiles(fromDir: string, toDir: string): Promise<string[]> {
  const copied: string[] = [];
  let names: string[];
  try {
    names = (await fsp.readdir(fromDir)).sort();
  } catch {
    return copied;
  }
  for (const name of names) {
    if (!isCompanionFile(name)) continue;
    const from = path.join(fromDir, name);
    const st = await fsp.stat(from).catch(() => undefined);
    if (!st?.isFile() || st.size > MAX_COMPANION_BYTES) continue;
    const to = path.join(toDir, name);
    if (await fsp.stat(to).then(() => true, () => false)) continue;
    await writeFileAtomic(to, await fsp.readFile(from));
    copied.push(name);
  }
  return copied;
}
