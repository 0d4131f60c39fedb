"""Review and sign-off: the trail of results and reviews, the queue, what is due, the monthly report."""
