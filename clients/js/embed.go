// Package clientjs holds the herald browser client, herald.js, for Go code
// that serves it: herald --dev serves Module at /herald.js. The JavaScript
// files beside this one are the only copy: the npm package and the binary
// ship the same bytes.
package clientjs

import _ "embed"

// Module is herald.js, the client's ES module.
//
//go:embed herald.js
var Module []byte

// Types is herald.d.ts, its TypeScript declarations.
//
//go:embed herald.d.ts
var Types []byte
