/**
 * Fills every element rendered by `{% streamdash_stream %}` on the page. Loaded as
 * `<script type="module">` (deferred, so the elements exist); a page with several tags loads
 * it once. Nothing runs inline, so it works under a `script-src 'self'` CSP.
 */
import { mountAll } from "./streamdash.js";

mountAll();
