// Minimal vitest reporter: prints one machine-greppable summary line at the very end.
export default class SummaryReporter {
  onTestRunEnd(testModules, unhandledErrors) {
    const counts = { passed: 0, failed: 0, skipped: 0, pending: 0 };
    const failed = [];
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        counts[state] = (counts[state] ?? 0) + 1;
        if (state === "failed") failed.push(test.fullName);
      }
    }
    const selected = counts.passed + counts.failed;
    if (failed.length) {
      console.log(`\nFailed conformance tests (${failed.length}):`);
      for (const name of failed) console.log(`  x ${name}`);
    }
    const errors = unhandledErrors?.length ?? 0;
    const ok = counts.failed === 0 && errors === 0 && counts.passed > 0;
    console.log(
      `\nCONFORMANCE SUMMARY: ${ok ? "PASS" : "FAIL"} passed=${counts.passed}/${selected} ` +
        `failed=${counts.failed} excluded/skipped=${counts.skipped + counts.pending} unhandledErrors=${errors}`,
    );
  }
}
