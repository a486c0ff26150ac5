package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Status is a member's /status: its view of the cluster.
type Status struct {
	Node              string   `json:"node"` // its name (-node)
	HTTP              string   `json:"http"`
	Raft              string   `json:"raft"`  // its Raft server ID (advertised Raft address)
	State             string   `json:"state"` // Leader, Follower, Candidate or Shutdown
	Leader            string   `json:"leader"`
	LeaderHTTP        string   `json:"leader_http"`
	Term              uint64   `json:"term"`
	LastLogIndex      uint64   `json:"last_log_index"`
	CommitIndex       uint64   `json:"commit_index"`
	AppliedIndex      uint64   `json:"applied_index"`
	LastSnapshotIndex uint64   `json:"last_snapshot_index"`
	Servers           []Server `json:"servers"`
	Writable          bool     `json:"writable"`
	Keys              int      `json:"keys"`
	Bytes             int64    `json:"bytes"`
	Member            bool     `json:"member"` // false once it was removed
}

// Server is one entry of the Raft configuration.
type Server struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"` // Voter, Nonvoter
	HTTP     string `json:"http"`     // "" while unknown
}

// Status returns the /status of the first member that answers (the leader
// if the client knows it), and learns the members it lists.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	if l := c.pick(nil, true); l != "" && c.leaderKnown(nil) {
		if st, err := c.StatusOf(ctx, l); err == nil {
			c.learn(st)
			return st, nil
		}
	}
	a, err := c.anyCall(ctx, "status", "/status", false)
	if err != nil {
		return nil, err
	}
	st, err := decodeStatus(a)
	if err != nil {
		return nil, &Error{Op: "status", Err: err}
	}
	c.learn(st)
	return st, nil
}

// StatusOf returns the /status of the node at addr, in one attempt (the
// read timeout). No token is sent: /status needs none.
func (c *Client) StatusOf(ctx context.Context, addr string) (*Status, error) {
	return c.statusOf(ctx, addr)
}

func (c *Client) statusOf(ctx context.Context, addr string) (*Status, error) {
	if err := checkAddr(addr); err != nil {
		return nil, &Error{Op: "status", Addr: addr, Err: err}
	}
	a, _, err := c.send(ctx, http.MethodGet, addr, "/status", "", false, c.set.readTimeout, false)
	if err != nil {
		return nil, &Error{Op: "status", Addr: addr, Kind: ErrUnavailable, Err: err}
	}
	if a.code != http.StatusOK {
		return nil, &Error{Op: "status", Addr: addr, Status: a.code, Body: trim(a.body), Kind: kindOf(a.code)}
	}
	st, err := decodeStatus(a)
	if err != nil {
		return nil, &Error{Op: "status", Addr: addr, Err: err}
	}
	return st, nil
}

func decodeStatus(a answer) (*Status, error) {
	var st Status
	if err := json.Unmarshal([]byte(a.body), &st); err != nil {
		return nil, fmt.Errorf("decode /status: %w", err)
	}
	return &st, nil
}
