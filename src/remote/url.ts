/**
 * Remote checkpoint locations (docs/scale-out.md, "Checkpoints over HTTP and the Hugging Face
 * Hub"). A remote file is named by its full URL wherever bytes are fetched, and by
 * scheme://host/path wherever it is shown: query strings carry presigned signatures and user
 * info carries passwords, so neither may reach a report, run-info.json or an error line.
 * No imports: `src/errors.ts` uses this to clean every message.
 */

/** An http(s) URL (what `--urls` lines and `hf://` resolution produce). */
export function isRemote(path: string): boolean {
  return /^https?:\/\//i.test(path);
}

/** scheme://host[:port]/path of a URL: no user info, no query, no fragment. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url.replace(/[?#].*$/, '');
  }
}

/** `text` with every http(s) URL in it reduced to {@link displayUrl}. */
export function redactUrls(text: string): string {
  // A URL ends before whitespace, quotes, or the punctuation that follows it in a sentence ("<url>: …").
  return text.replace(/https?:\/\/[^\s"'<>]*[^\s"'<>:,.;)\]]/gi, (m) => displayUrl(m));
}

/** The last path segment of a URL, percent-decoded (a checkpoint's file name). */
export function urlFileName(url: string): string {
  const parts = new URL(url).pathname.split('/').filter(Boolean);
  const last = parts[parts.length - 1] ?? '';
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** The path segment before the file name, percent-decoded ('' at the root). */
export function urlFolderName(url: string): string {
  const parts = new URL(url).pathname.split('/').filter(Boolean);
  const seg = parts[parts.length - 2] ?? '';
  try {
    return decodeURIComponent(seg);
  } catch {
    return seg;
  }
}
