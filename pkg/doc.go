// Package pkg holds nothing itself; its subpackages are what redms-capture,
// redms-loader and the tools share.
package pkg
