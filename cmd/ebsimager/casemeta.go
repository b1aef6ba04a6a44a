package main

import "github.com/spf13/cobra"

// caseMeta is the case information examiners record with an acquisition.
type caseMeta struct {
	caseNumber, evidenceNumber, examiner, description, notes string
}

func (c *caseMeta) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.caseNumber, "case-number", "", "case number, recorded with the evidence")
	f.StringVar(&c.evidenceNumber, "evidence-number", "", "evidence number")
	f.StringVar(&c.examiner, "examiner", "", "examiner's name")
	f.StringVar(&c.description, "description", "", "description of the evidence")
	f.StringVar(&c.notes, "notes", "", "notes")
}

// fields returns the non-empty fields by their report names.
func (c *caseMeta) fields() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{
		"case_number": c.caseNumber, "evidence_number": c.evidenceNumber, "examiner": c.examiner,
		"description": c.description, "notes": c.notes,
	} {
		if v != "" {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
