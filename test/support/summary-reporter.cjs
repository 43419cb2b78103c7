'use strict';
// Mocha reporter: exactly mocha's built-in `spec` reporter, plus one final
// plain line for CI log scraping:
//
//   N passed, N failed[, N skipped]
//
// "skipped" (pending tests) is appended only when there are some. "failed" is
// mocha's failure count, which includes failed hooks.
//
// Plain CommonJS on purpose: it is loaded by mocha directly (not compiled by tsc).
// Used via .mocharc.json: "reporter": "./test/support/summary-reporter.cjs".

const Mocha = require('mocha');

const Spec = Mocha.reporters.Spec;
const Base = Mocha.reporters.Base;
const log =
  typeof Base.consoleLog === 'function' ? (...args) => Base.consoleLog(...args) : (...args) => console.log(...args);

class SummaryReporter extends Spec {
  static description = 'spec, followed by a one-line "N passed, N failed, N skipped" summary';

  // Spec registers `runner.once(EVENT_RUN_END, () => this.epilogue())`, so
  // overriding epilogue prints our line after mocha's passing/failing block.
  epilogue(...args) {
    super.epilogue(...args);
    const stats = this.stats || {};
    const passed = stats.passes || 0;
    const failed = stats.failures || 0;
    const skipped = stats.pending || 0;
    let line = `${passed} passed, ${failed} failed`;
    if (skipped > 0) line += `, ${skipped} skipped`;
    log(line);
  }
}

module.exports = SummaryReporter;
