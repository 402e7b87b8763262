"""jupyter_kernel_test's protocol conformance checks against the installed "tsparallel" kernel,
for what it supports: execution with stdout/stderr, results, rich display, errors, completion,
is_complete and inspection (tslab's language service). Run from the repository root so that
cells can import tslab's display API."""
import unittest

import jupyter_kernel_test


class TsparallelKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "tsparallel"
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("oops")'
    code_generate_error = 'throw new Error("an error on purpose")'
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "const s: string = 'ab'; s.length", "result": "2"},
    ]
    code_display_data = [
        {"code": 'import * as tslab from "tslab"; tslab.display.html("<b>bold</b>")', "mime": "text/html"},
    ]
    completion_samples = [{"text": "Math.flo", "matches": {"floor"}}]
    complete_code_samples = ["1 + 1", "const a = [1, 2];"]
    incomplete_code_samples = ["function f() {", "const b = ["]
    code_inspect_sample = "Math.max"


if __name__ == "__main__":
    unittest.main(verbosity=2)
