// Package rserr is the error a Redshift client sees: a SQLSTATE, a message
// worded like Redshift's, and an optional detail. Every layer of the
// emulator returns these for statements Redshift would reject.
package rserr

import "fmt"

// SQLSTATE codes the emulator answers with.
const (
	SyntaxError          = "42601"
	FeatureNotSupported  = "0A000"
	UndefinedFunction    = "42883"
	InvalidTableDef      = "42P16"
	NameTooLong          = "42622"
	InvalidParameter     = "22023"
	StringTooLong        = "22001"
	NumericOutOfRange    = "22003"
	DatetimeOutOfRange   = "22008"
	ActiveSQLTransaction = "25001"
	SerializationFailure = "40001"
	InternalError        = "XX000"
	InvalidTextRep       = "22P02"
	UndefinedObject      = "42704"
	ProgramLimitExceeded = "54000"
	UndefinedColumn      = "42703"
)

// Error is an error reported to the client as an ErrorResponse.
type Error struct {
	Code    string // SQLSTATE
	Message string
	Detail  string
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s (SQLSTATE %s; %s)", e.Message, e.Code, e.Detail)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

// New returns an Error with a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Syntax is Redshift's parser error for an unexpected token.
func Syntax(near string) *Error {
	return New(SyntaxError, "syntax error at or near %q", near)
}
