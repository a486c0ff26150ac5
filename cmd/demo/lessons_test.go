package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoLessons is the checkout's ui/lessons.json, the one source of the
// lessons' steps and words.
func repoLessons(t *testing.T) *lessonSource {
	t.Helper()
	b, err := os.ReadFile("../../ui/lessons.json")
	if err != nil {
		t.Fatal(err)
	}
	src, err := parseLessons(b)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// pageSteps lists the step ids ui/lessons.js implements, in the order of
// its STEPS object: one key per line, two spaces in.
func pageSteps(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../ui/lessons.js")
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	start := strings.Index(js, "\nconst STEPS = {\n")
	if start < 0 {
		t.Fatal("ui/lessons.js has no `const STEPS = {`")
	}
	end := strings.Index(js[start:], "\n};\n")
	if end < 0 {
		t.Fatal("ui/lessons.js: STEPS does not end with `};`")
	}
	var ids []string
	for _, m := range regexp.MustCompile(`(?m)^  "([a-z0-9-]+)": \{$`).FindAllStringSubmatch(js[start:start+end], -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// The page and make demo tell the same lessons: every step of lessons.json
// is implemented on both sides, and nothing else is; the page's STEPS follow
// lessons.json's order (the demo walks lessons.json itself, and TestDemoAuto
// checks the order it walked). The words are lessons.json's on both sides.
func TestLessonsAgree(t *testing.T) {
	src := repoLessons(t)
	ids := src.stepIDs()
	seen := map[string]bool{}
	allowed := regexp.MustCompile(`</?(b|em)>`)
	for _, l := range src.Lessons {
		if l.ID == "" || l.Title == "" || len(l.Steps) == 0 {
			t.Errorf("lesson %q: wants an id, a title and steps", l.Title)
		}
		for _, s := range l.Steps {
			if seen[s.ID] {
				t.Errorf("step id %q twice: a step is known by its id alone", s.ID)
			}
			seen[s.ID] = true
			for part, text := range map[string]string{"intro": s.Intro, "outcome": s.Outcome, "otherwise": s.Otherwise} {
				if strings.TrimSpace(text) == "" {
					t.Errorf("step %s: no %s", s.ID, part)
				}
				if rest := allowed.ReplaceAllString(text, ""); strings.ContainsAny(rest, "<>") {
					t.Errorf("step %s: its %s has markup other than <b> and <em>: %q", s.ID, part, text)
				}
			}
		}
	}
	var demo []string
	for id := range steps {
		demo = append(demo, id)
	}
	for _, id := range ids {
		if _, ok := steps[id]; !ok {
			t.Errorf("step %s of lessons.json: make demo does not implement it (cmd/demo/steps.go)", id)
		}
	}
	for _, id := range demo {
		if !slices.Contains(ids, id) {
			t.Errorf("make demo implements a step %s that lessons.json does not have", id)
		}
	}
	if page := pageSteps(t); !slices.Equal(page, ids) {
		t.Errorf("the page implements the steps %v;\nlessons.json has %v, in this order", page, ids)
	}
}

func TestFill(t *testing.T) {
	got, missing := fill(`{who} answered <b>{value}</b> &amp; {nobody}`, map[string]string{"who": "node2", "value": "old"})
	if got != "node2 answered old & {nobody}" || !slices.Equal(missing, []string{"{nobody}"}) {
		t.Fatalf("fill: %q, missing %v", got, missing)
	}
	if w := wrap(strings.Repeat("word ", 30), "  "); strings.Count(w, "\n") != 1 || !strings.Contains(w, "\n  word") {
		t.Fatalf("wrap: %q", w)
	}
}
