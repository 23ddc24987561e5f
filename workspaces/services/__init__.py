"""The write path of workspaces: launches, packets, worktree clean-up."""
