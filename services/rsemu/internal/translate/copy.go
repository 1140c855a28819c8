package translate

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/redms/redms/services/rsemu/internal/rserr"
	"github.com/redms/redms/services/rsemu/internal/sqltok"
)

// CopyStmt is a parsed Redshift COPY … FROM 's3://…'.
type CopyStmt struct {
	Table           string   // rendered (translated) table name, e.g. "public"."t" or t
	TableName       string   // the table's own name, for messages
	Columns         []string // column names as stored; nil = all columns
	From            string   // s3://bucket/key-or-prefix
	Auth            CopyAuth
	Manifest        bool
	Region          string
	Gzip            bool
	Delimiter       string // default ","
	Quote           string // default `"`
	Null            string // default `\N`
	EmptyAsNull     bool
	BlanksAsNull    bool
	TimeFormat      string // "" = default, "auto"
	DateFormat      string
	TruncateColumns bool
	AcceptInvChars  string // "" = off, else the replacement character
	MaxError        int
	IgnoreHeader    int
	RoundDec        bool // ROUNDEC: round excess numeric scale instead of truncating
}

// CopyAuth are the credentials a COPY names.
type CopyAuth struct {
	IAMRole         string
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

var iamRoleRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/\S+$`)

func copyErr(format string, args ...any) error {
	return rserr.New(rserr.InternalError, format, args...)
}

// translateCopy parses COPY. Only the S3 CSV form is emulated.
func translateCopy(s stmt) (Stmt, error) {
	c := &CopyStmt{Delimiter: ",", Quote: `"`, Null: `\N`}
	i := 1
	nameStart := i
	for i < len(s.sig) && (s.tok(i).Kind == sqltok.QuotedIdent || s.tok(i).Kind == sqltok.Ident || s.punct(i, ".")) && !s.is(i, "from") && !s.is(i, "to") {
		i++
	}
	if i == nameStart {
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	}
	c.Table = s.text(nameStart, i)
	c.TableName = s.tok(i - 1).IdentValue()
	if s.punct(i, "(") {
		end := s.closing(i)
		if end < 0 {
			return Stmt{}, rserr.Syntax("(")
		}
		for _, r := range s.splitCommas(i+1, end) {
			if r[1]-r[0] != 1 {
				return Stmt{}, rserr.Syntax(s.tok(r[0]).Text)
			}
			c.Columns = append(c.Columns, s.tok(r[0]).IdentValue())
		}
		i = end + 1
	}
	if s.is(i, "to") {
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	}
	if !s.is(i, "from") {
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	}
	i++
	if s.is(i, "stdin") || s.is(i, "stdout") || s.is(i, "program") {
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	}
	from, ok := s.tok(i).StringValue()
	if !ok {
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	}
	if !strings.HasPrefix(from, "s3://") {
		return Stmt{}, copyErr("COPY from this data source is not supported by the Redshift emulator (only s3://): %s", from)
	}
	c.From = from
	i++
	csv := false
	var keys, creds bool
	var credAuth CopyAuth
	str := func(j int) (string, int, error) {
		if s.is(j, "as") {
			j++
		}
		v, ok := s.tok(j).StringValue()
		if !ok {
			return "", 0, rserr.Syntax(s.tok(j).Text)
		}
		return v, j + 1, nil
	}
	num := func(j int) (int, int, error) {
		if s.is(j, "as") {
			j++
		}
		n, err := strconv.Atoi(s.tok(j).Text)
		if err != nil || s.tok(j).Kind != sqltok.Number {
			return 0, 0, rserr.Syntax(s.tok(j).Text)
		}
		return n, j + 1, nil
	}
	onOff := func(j int) int {
		switch strings.ToLower(s.tok(j).Text) {
		case "on", "off", "true", "false", "preset":
			return j + 1
		}
		return j
	}
	for i < len(s.sig) {
		t := s.tok(i)
		if t.Kind != sqltok.Ident {
			return Stmt{}, rserr.Syntax(t.Text)
		}
		var err error
		switch strings.ToLower(t.Text) {
		case "iam_role":
			if s.is(i+1, "default") {
				c.Auth.IAMRole, i = "default", i+2
				break
			}
			c.Auth.IAMRole, i, err = str(i + 1)
		case "access_key_id":
			keys = true
			c.Auth.AccessKeyID, i, err = str(i + 1)
		case "secret_access_key":
			keys = true
			c.Auth.SecretAccessKey, i, err = str(i + 1)
		case "session_token":
			keys = true
			c.Auth.SessionToken, i, err = str(i + 1)
		case "credentials", "with":
			if t.Is("with") {
				if !s.is(i+1, "credentials") {
					return Stmt{}, rserr.Syntax(s.tok(i + 1).Text)
				}
				i++
			}
			creds = true
			var v string
			if v, i, err = str(i + 1); err == nil {
				err = parseCredentials(v, &credAuth)
			}
		case "manifest":
			c.Manifest, i = true, i+1
		case "region":
			c.Region, i, err = str(i + 1)
		case "gzip":
			c.Gzip, i = true, i+1
		case "csv":
			csv, i = true, i+1
			if s.is(i, "quote") {
				c.Quote, i, err = str(i + 1)
			}
		case "format":
			j := i + 1
			if s.is(j, "as") {
				j++
			}
			if !s.is(j, "csv") {
				return Stmt{}, copyErr("COPY format %s is not supported by the Redshift emulator (only CSV)", s.tok(j).Text)
			}
			csv, i = true, j+1
			if s.is(i, "quote") {
				c.Quote, i, err = str(i + 1)
			}
		case "quote":
			c.Quote, i, err = str(i + 1)
		case "delimiter":
			c.Delimiter, i, err = str(i + 1)
		case "null":
			if !s.is(i+1, "as") {
				return Stmt{}, rserr.Syntax(s.tok(i + 1).Text)
			}
			c.Null, i, err = str(i + 1)
		case "emptyasnull":
			c.EmptyAsNull, i = true, i+1
		case "blanksasnull":
			c.BlanksAsNull, i = true, i+1
		case "timeformat":
			c.TimeFormat, i, err = str(i + 1)
		case "dateformat":
			c.DateFormat, i, err = str(i + 1)
		case "truncatecolumns":
			c.TruncateColumns, i = true, i+1
		case "acceptinvchars":
			c.AcceptInvChars, i = "?", i+1
			if s.tok(i).Kind == sqltok.String || s.is(i, "as") {
				c.AcceptInvChars, i, err = str(i)
			}
		case "compupdate", "statupdate":
			i = onOff(i + 1)
		case "maxerror":
			c.MaxError, i, err = num(i + 1)
		case "ignoreheader":
			c.IgnoreHeader, i, err = num(i + 1)
		case "roundec":
			c.RoundDec, i = true, i+1
		case "gzip_", "bzip2", "lzop", "zstd", "json", "avro", "parquet", "orc", "fixedwidth", "escape", "removequotes",
			"explicit_ids", "fillrecord", "ignoreblanklines", "trimblanks", "encoding", "ssh", "noload":
			return Stmt{}, copyErr("COPY option %s is not supported by the Redshift emulator", strings.ToUpper(t.Text))
		default:
			return Stmt{}, rserr.Syntax(t.Text)
		}
		if err != nil {
			return Stmt{}, err
		}
	}
	switch {
	case c.Auth.IAMRole != "" && (keys || creds):
		return Stmt{}, copyErr("conflicting or redundant options: IAM_ROLE cannot be used with ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN or CREDENTIALS")
	case creds && !keys:
		c.Auth = credAuth
	}
	switch {
	case keys && creds:
		return Stmt{}, copyErr("conflicting or redundant options: ACCESS_KEY_ID/SECRET_ACCESS_KEY cannot be used with CREDENTIALS")
	case keys && (c.Auth.AccessKeyID == "" || c.Auth.SecretAccessKey == ""):
		return Stmt{}, copyErr("ACCESS_KEY_ID and SECRET_ACCESS_KEY must be specified together")
	case c.Auth.IAMRole == "" && c.Auth.AccessKeyID == "":
		return Stmt{}, copyErr("Missing credentials: specify IAM_ROLE, ACCESS_KEY_ID and SECRET_ACCESS_KEY, or CREDENTIALS")
	case c.Auth.IAMRole != "" && c.Auth.IAMRole != "default" && !iamRoleRE.MatchString(c.Auth.IAMRole):
		return Stmt{}, copyErr("Invalid IAM role ARN %q: must be arn:aws:iam::<account>:role/<name>", c.Auth.IAMRole)
	case !csv:
		return Stmt{}, copyErr("COPY without CSV is not supported by the Redshift emulator")
	case len(c.Delimiter) != 1:
		return Stmt{}, copyErr("COPY delimiter must be a single character")
	case len(c.Quote) != 1:
		return Stmt{}, copyErr("CSV quote character must be a single character")
	case c.Quote == c.Delimiter:
		return Stmt{}, copyErr("COPY delimiter and quote must be different")
	}
	for _, f := range []string{c.TimeFormat, c.DateFormat} {
		switch strings.ToLower(f) {
		case "", "auto", "yyyy-mm-dd", "yyyy-mm-dd hh:mi:ss":
		default:
			return Stmt{}, copyErr("DATEFORMAT/TIMEFORMAT %q is not supported by the Redshift emulator (only 'auto' and the defaults)", f)
		}
	}
	return Stmt{Kind: Copy, Copy: c}, nil
}

// parseCredentials parses 'aws_iam_role=…' or
// 'aws_access_key_id=…;aws_secret_access_key=…[;token=…]'.
func parseCredentials(v string, a *CopyAuth) error {
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return copyErr("Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' or 'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'")
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "aws_iam_role":
			a.IAMRole = val
		case "aws_access_key_id":
			a.AccessKeyID = val
		case "aws_secret_access_key":
			a.SecretAccessKey = val
		case "token":
			a.SessionToken = val
		default:
			return copyErr("Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' or 'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'")
		}
	}
	if a.IAMRole != "" && a.AccessKeyID != "" {
		return copyErr("Invalid credentials: aws_iam_role cannot be combined with access keys")
	}
	if a.IAMRole == "" && (a.AccessKeyID == "" || a.SecretAccessKey == "") {
		return copyErr("Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' or 'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'")
	}
	return nil
}
