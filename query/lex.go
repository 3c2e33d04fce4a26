package query

import (
	"fmt"
	"strings"
)

// The filter lexer: words, parentheses and operators, with their byte
// positions for FilterError.

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tLParen
	tRParen
	tNot
	tAnd
	tOr
	tFlowSep // <>
	tErr     // a lexical error, reported when the parser reaches it
)

type token struct {
	kind     tokKind
	pos, end int
	text     string // as written
	word     string // lower-cased text, "" for an escaped word (\tcp)
}

// isWordByte reports whether c continues a word: anything but white space
// and the operator characters.
func isWordByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '(', ')', '!', '&', '|', '<', '>':
		return false
	}
	return true
}

func lex(expr string) []token {
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			i++
			continue
		case c == '(':
			toks = append(toks, token{kind: tLParen, pos: i, end: i + 1, text: "("})
			i++
			continue
		case c == ')':
			toks = append(toks, token{kind: tRParen, pos: i, end: i + 1, text: ")"})
			i++
			continue
		case c == '!':
			if i+1 < len(expr) && expr[i+1] == '=' {
				toks = append(toks, token{kind: tErr, pos: i, end: i + 2, text: `comparisons ("!=") are not supported`})
				i += 2
				continue
			}
			toks = append(toks, token{kind: tNot, pos: i, end: i + 1, text: "!"})
			i++
			continue
		case c == '&' || c == '|':
			if i+1 < len(expr) && expr[i+1] == c {
				k := tAnd
				if c == '|' {
					k = tOr
				}
				toks = append(toks, token{kind: k, pos: i, end: i + 2, text: expr[i : i+2]})
				i += 2
				continue
			}
			toks = append(toks, token{kind: tErr, pos: i, end: i + 1, text: fmt.Sprintf("unexpected %q (did you mean %q?)", c, string([]byte{c, c}))})
			i++
			continue
		case c == '<' && i+1 < len(expr) && expr[i+1] == '>':
			toks = append(toks, token{kind: tFlowSep, pos: i, end: i + 2, text: "<>"})
			i += 2
			continue
		case c == '<' || c == '>':
			toks = append(toks, token{kind: tErr, pos: i, end: i + 1, text: fmt.Sprintf("unexpected %q (comparisons are not supported; flows are written A <> B)", c)})
			i++
			continue
		}
		j := i
		for j < len(expr) && isWordByte(expr[j]) {
			j++
		}
		text := expr[i:j]
		t := token{kind: tWord, pos: i, end: j, text: text}
		if text[0] == '\\' {
			t.text = text[1:]
		} else {
			t.word = strings.ToLower(text)
			switch t.word {
			case "and":
				t.kind = tAnd
			case "or":
				t.kind = tOr
			case "not":
				t.kind = tNot
			}
		}
		toks = append(toks, t)
		i = j
	}
	toks = append(toks, token{kind: tEOF, pos: len(expr), end: len(expr)})
	return toks
}
