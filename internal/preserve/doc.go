// Package preserve owns the preservation step: from an instance or a
// volume to snapshots that are evidence. For an instance it makes one
// crash-consistent set of snapshots of the attached EBS volumes (EC2
// CreateSnapshots), for a volume one snapshot (CreateSnapshot); it tags
// each with the case, the tool, the time, the instance, the device and
// the volume, waits until every snapshot is completed, copies it under a
// customer managed KMS key when asked, locks it (EBS Snapshot Lock) and
// shares it with a forensic account, verifying the share. Latest finds
// the newest completed snapshot of each volume instead of making one.
// Every EC2 and STS request goes through one recorder: the SDK's retryer
// is off, ebs.Policy retries what may succeed (awsctx.Classify sorts the
// errors), and each request is kept in the custody record
// (report.Preservation) with its region, request id, time, attempts,
// outcome and a summary of what it returned. A failure mid-way still
// leaves the record of what was done.
package preserve
