Subject: [#{{TICKET}}] Ticket #{{TICKET}} is closed

Hello,

Your mail was not added: ticket #{{TICKET}}, "{{SUBJECT}}", is closed.
To ask something new, write to us without replying to this mail, or
raise a ticket here:

  {{BASE_URL}}/tickets/new

Your closed ticket stays readable here:

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
