package main

import (
	"fmt"
	"io"
	"mime"
	"net/http"
)

// maxFetchedBody bounds what fetch reads of an answer; /metrics is a few
// hundred KiB at most.
const maxFetchedBody = 16 << 20

// bodyExcerptLen is how much of an unexpected answer's body an error
// message quotes.
const bodyExcerptLen = 200

// fetch sends req with client and returns the body of its answer, or an
// error naming the URL and saying what came back instead of a 200 whose
// media type is wantType (any type when wantType is ""): the status, the
// Content-Type and the first bytes of the body. where names the URL in
// messages (an admin endpoint on a unix socket has no URL of its own).
func fetch(client *http.Client, req *http.Request, where, wantType string) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", req.Method, where, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFetchedBody))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the body: %v", req.Method, where, err)
	}
	contentType := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %q, Content-Type %q, body %q", req.Method, where, resp.Status, contentType, excerpt(body))
	}
	if got, _, _ := mime.ParseMediaType(contentType); wantType != "" && got != wantType {
		return nil, fmt.Errorf("%s %s: Content-Type %q, want %s (status %q, body %q)", req.Method, where, contentType, wantType, resp.Status, excerpt(body))
	}
	return body, nil
}

// getURL fetches url with a GET, as fetch does.
func getURL(client *http.Client, url, wantType string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return fetch(client, req, url, wantType)
}

// excerpt is the start of a body, for an error message.
func excerpt(body []byte) string {
	if len(body) > bodyExcerptLen {
		return string(body[:bodyExcerptLen]) + "…"
	}
	return string(body)
}
